import { defineConfig } from 'vitest/config';

// CI sets PGPUBSUB_TEST_REPORT to collect counts from a JSON report beside the normal output.
const report = process.env.PGPUBSUB_TEST_REPORT;

export default defineConfig({
  test: {
    globalSetup: ['./test/support/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    hookTimeout: 60_000,
    testTimeout: 60_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
    ...(report ? { reporters: ['default', 'json'], outputFile: { json: report } } : {}),
  },
});
