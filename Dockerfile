# mizzen control plane image: multi-stage, Node 24, runs as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the build below compiles explicitly; the `node` devDependency is not needed in the image.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY protos ./protos
RUN node_modules/.bin/tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY protos ./protos
USER 1337:1337
# 15010 xDS (plaintext), 15012 xDS + CA over TLS, 15014 monitoring, 15017 injection webhook (HTTPS).
EXPOSE 15010 15012 15014 15017
ENTRYPOINT ["node", "/app/bin/mizzen.js"]
CMD ["serve", "--config", "/etc/mizzen/config"]
