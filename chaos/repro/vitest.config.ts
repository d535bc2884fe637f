import { defineConfig } from 'vitest/config';

// Reproductions of known bugs: these tests FAIL until the bugs are fixed, so they live outside the
// suite. Run: npx vitest run --config chaos/repro/vitest.config.ts
export default defineConfig({
  test: {
    globalSetup: ['./test/support/global-setup.ts'],
    include: ['chaos/repro/**/*.test.ts'],
    hookTimeout: 60_000,
    testTimeout: 30_000,
    pool: 'forks',
  },
});
