import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // e2e tests bind loopback ports and start gRPC clients; keep files in separate forks.
    pool: 'forks',
  },
});
