/**
 * `npm run chaos [-- --notifications 20000 --duration 60 --seed 42 --workers 4 --concurrency 4 --producers 4
 *   --isolation serializable]`
 *
 * Starts its own embedded PostgreSQL (so it can restart it) unless CHAOS_DATABASE_URL is set, runs
 * the chaos scenario and prints the figures. Exits 1 when any guarantee was violated or the run could
 * not be made (e.g. the database is unreachable), 2 on an invalid argument.
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
    isolation: { type: 'string' },
    json: { type: 'boolean' },
  },
});

/** A number argument, or exit 2 with a usage error (an impossible run measures nothing). */
const num = (name: string, text: string | undefined, fallback: number, min = 1) => {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) {
    console.error(`chaos: --${name} must be a number ≥ ${min}, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
};

/** `--isolation`: the chaos database's default_transaction_isolation. */
function isolation(text: string | undefined) {
  const allowed = ['read committed', 'repeatable read', 'serializable'] as const;
  if (text === undefined) return undefined;
  const value = text.replace('-', ' ') as (typeof allowed)[number];
  if (!allowed.includes(value)) {
    console.error(
      `chaos: --isolation must be read-committed, repeatable-read or serializable, got ${JSON.stringify(text)}`,
    );
    process.exit(2);
  }
  return value;
}

const options = {
  notifications: num('notifications', values.notifications, DEFAULT_OPTIONS.notifications),
  durationMs: num('duration', values.duration, DEFAULT_OPTIONS.durationMs / 1000) * 1000,
  seed: num('seed', values.seed, DEFAULT_OPTIONS.seed, 0),
  workers: num('workers', values.workers, DEFAULT_OPTIONS.workers),
  concurrency: num('concurrency', values.concurrency, DEFAULT_OPTIONS.concurrency),
  producers: num('producers', values.producers, DEFAULT_OPTIONS.producers),
  pollIntervalMs: num('poll-ms', values['poll-ms'], DEFAULT_OPTIONS.pollIntervalMs, 0),
  databaseUrl: process.env.CHAOS_DATABASE_URL || undefined,
  faults: values.faults?.split(',') as never,
  isolation: isolation(values.isolation),
};
let report: Awaited<ReturnType<typeof runChaos>>;
try {
  report = await runChaos(options);
} catch (error) {
  // The run could not be made (database unreachable, a worker that cannot start): that is a failure too.
  console.error(`chaos: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
  process.exit(1);
}
console.log(formatReport(report));
if (values.json) console.log(JSON.stringify(report, null, 2));
else if (report.workerSamples.length)
  console.log(`  sample listener errors:\n    ${report.workerSamples.join('\n    ')}`);
process.exit(report.violations.length === 0 ? 0 : 1);
