/**
 * `npm run chaos [-- --notifications 20000 --duration 60 --seed 42 --workers 4 --concurrency 4 --producers 4]`
 *
 * Starts its own embedded PostgreSQL (so it can restart it) unless CHAOS_DATABASE_URL is set, runs
 * the chaos scenario and prints the figures. Exits 1 when any guarantee was violated.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS, runChaos } from './chaos.ts';
import { formatReport } from './report.ts';

const { values } = parseArgs({
  options: {
    notifications: { type: 'string' },
    duration: { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string' },
    concurrency: { type: 'string' },
    producers: { type: 'string' },
    'poll-ms': { type: 'string' },
    faults: { type: 'string' },
    json: { type: 'boolean' },
  },
});

const num = (text: string | undefined, fallback: number) => (text === undefined ? fallback : Number(text));

const report = await runChaos({
  notifications: num(values.notifications, DEFAULT_OPTIONS.notifications),
  durationMs: num(values.duration, DEFAULT_OPTIONS.durationMs / 1000) * 1000,
  seed: num(values.seed, DEFAULT_OPTIONS.seed),
  workers: num(values.workers, DEFAULT_OPTIONS.workers),
  concurrency: num(values.concurrency, DEFAULT_OPTIONS.concurrency),
  producers: num(values.producers, DEFAULT_OPTIONS.producers),
  pollIntervalMs: num(values['poll-ms'], DEFAULT_OPTIONS.pollIntervalMs),
  databaseUrl: process.env.CHAOS_DATABASE_URL || undefined,
  faults: values.faults?.split(',') as never,
});
console.log(formatReport(report));
if (values.json) console.log(JSON.stringify(report, null, 2));
else if (report.workerSamples.length)
  console.log(`  sample listener errors:\n    ${report.workerSamples.join('\n    ')}`);
process.exit(report.violations.length === 0 ? 0 : 1);
