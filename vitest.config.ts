import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';
import { LongFirstSequencer } from './test/support/sequencer.ts';

// CI sets PGPUBSUB_TEST_REPORT to collect counts from a JSON report beside the normal output.
const report = process.env.PGPUBSUB_TEST_REPORT;

// The installed drizzle-orm's major version (read from its package.json, as Node resolves it):
// test-drizzle1/ holds type tests of drizzle-orm 1.0's own APIs, which 0.45 does not have.
const drizzleMajor = Number.parseInt(
  (
    JSON.parse(readFileSync(new URL('./node_modules/drizzle-orm/package.json', import.meta.url), 'utf8')) as {
      version: string;
    }
  ).version,
  10,
);

export default defineConfig({
  test: {
    globalSetup: ['./test/support/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    hookTimeout: 60_000,
    testTimeout: 60_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    // The longest files first, so that the two workers finish together (test/support/sequencer.ts).
    sequence: { sequencer: LongFirstSequencer },
    typecheck: {
      enabled: true,
      include: ['test/**/*.test-d.ts', ...(drizzleMajor >= 1 ? ['test-drizzle1/**/*.test-d.ts'] : [])],
      tsconfig: './tsconfig.json',
    },
    ...(report ? { reporters: ['default', 'json'], outputFile: { json: report } } : {}),
  },
});
