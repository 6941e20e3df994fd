# The proxy image (istio-proxy's role): Envoy from the official Envoy image, Node 24 and mizzen's agent, non-root.
# The injected `istio-proxy` container runs `mizzen agent` (certificates, SDS, bootstrap, Envoy supervision, probes);
# the init container runs `mizzen iptables` (needs NET_ADMIN/NET_RAW, so the iptables tools are installed here too).
# Build: docker build -f proxy.Dockerfile -t mizzen/proxy .
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.36.2
FROM ${ENVOY_IMAGE} AS envoy

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY protos ./protos
RUN node_modules/.bin/tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=envoy /usr/local/bin/envoy /usr/local/bin/envoy
WORKDIR /app
ENV NODE_ENV=production \
    ENVOY_BINARY=/usr/local/bin/envoy \
    # Plain Envoy has none of Istio's proxy extensions (istio.stats, peer metadata, istio.alpn): the agent tells the
    # control plane so in the node metadata, and mizzen leaves those filters out for this proxy.
    PROXY_EXTENSIONS=envoy
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY protos ./protos
# The agent writes its bootstrap, sockets and certificates here (Istio's paths), owned by the proxy user.
RUN mkdir -p /etc/istio/proxy /var/run/secrets/workload-spiffe-uds /var/run/secrets/workload-spiffe-credentials /var/lib/istio/data \
 && chown -R 1337:1337 /etc/istio /var/run/secrets/workload-spiffe-uds /var/run/secrets/workload-spiffe-credentials /var/lib/istio
USER 1337:1337
# 15000 Envoy admin (localhost), 15001/15006 capture, 15020 agent status, 15021 readiness, 15090 Envoy stats.
EXPOSE 15001 15006 15020 15021 15090
ENTRYPOINT ["node", "/app/bin/mizzen.js"]
CMD ["agent"]
