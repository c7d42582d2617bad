import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Interop tests start real processes and namespaces; give them room, never a hang.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
