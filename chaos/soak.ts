/**
 * `npm run soak -- --minutes 10 [--rate 300] [--sample 30] [--seed 7]`
 *
 * A steady load: producers commit notifications at a fixed rate (trigger inserts, updates, deletes
 * and notify(), as in the chaos run but with no faults) while 2 listener processes handle them.
 * Every `--sample` seconds it prints throughput, backlog, the notifications table's size
 * (pg_total_relation_size: heap, TOAST and indexes), its dead tuples and autovacuum runs, and each
 * listener's RSS; at the end a summary, and the same exactly-once check as the chaos run.
 * Uses its own embedded PostgreSQL unless SOAK_DATABASE_URL is set.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startPg, withDatabase } from '../tools/embedded-pg.ts';
import { verifyDelivery, Workers } from './chaos.ts';
import { createRng } from './prng.ts';
import { adminPool, emptyLedger, type Pace, Producer } from './producer.ts';
import { chaosSetupSql } from './schema.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '300' },
    sample: { type: 'string', default: '30' },
    seed: { type: 'string', default: '7' },
    workers: { type: 'string', default: '2' },
  },
});
/** A positive number argument, or exit 2 with a usage error. */
const positive = (name: 'minutes' | 'rate' | 'sample' | 'workers') => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`soak: --${name} must be a positive number, got ${JSON.stringify(values[name])}`);
    process.exit(2);
  }
  return value;
};
const minutes = positive('minutes');
const rate = positive('rate');
const sampleMs = positive('sample') * 1000;
const seed = Number(values.seed);
positive('workers');
const durationMs = minutes * 60_000;

interface Sample {
  at: number;
  produced: number;
  processed: number;
  backlog: number;
  sizeBytes: number;
  heapBytes: number;
  live: number;
  dead: number;
  autovacuums: number;
  rssMb: number[];
  heapMb: number[];
}

const mb = (bytes: number) => bytes / 1024 / 1024;
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const server = await startPg(process.env.SOAK_DATABASE_URL || undefined, {
  max_connections: '200',
  // Log autovacuum runs of the table, for the curious (embedded server log).
  log_autovacuum_min_duration: '0',
});
const workers = new Workers(Number(values.workers));
// No kills here: no spare processes needed.
workers.spareCount = 0;
const stop = (signal: NodeJS.Signals) => {
  workers.killAll();
  void server.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

let exitCode = 0;
try {
  const dbName = `soak_${process.pid}`;
  const boot = new pg.Client({ connectionString: server.url });
  await boot.connect();
  await boot.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await boot.query(`CREATE DATABASE "${dbName}"`);
  await boot.end();
  const dbUrl = withDatabase(server.url, dbName);
  const adminConn = adminPool(dbUrl);
  const admin = adminConn.query;
  for (const statement of chaosSetupSql()) await admin(statement);
  const [reloptions] = await admin(
    `SELECT reloptions FROM pg_class WHERE oid = 'pgpubsub.notifications'::regclass`,
  );

  workers.env = { CHAOS_URL: dbUrl, CHAOS_CONCURRENCY: '4', CHAOS_POLL_MS: '15000' };
  await workers.startAll();
  console.log(
    `soak: ${minutes} min at ${rate} notifications/s, ${workers.slots.length} listener processes × concurrency 4, seed ${seed}`,
  );
  console.log(`soak: notifications table options ${JSON.stringify(reloptions?.reloptions)}`);

  const ledger = emptyLedger();
  const pace: Pace = {
    target: rate * (durationMs / 1000),
    durationMs,
    startedAt: performance.now(),
    reserved: 0,
  };
  const rng = createRng(seed);
  const producers = [0, 1].map((i) => new Producer(i, dbUrl, admin, rng.fork(`soak${i}`), ledger, pace));
  const production = Promise.all(producers.map((p) => p.run()));

  const committed = () => [...ledger.committed.values()].reduce((n, keys) => n + keys.length, 0);
  const samples: Sample[] = [];
  const take = async (): Promise<Sample> => {
    const [row] = await admin(`
      SELECT pg_total_relation_size('pgpubsub.notifications')::float8 AS size,
             pg_relation_size('pgpubsub.notifications')::float8 AS heap,
             s.n_live_tup::int AS live, s.n_dead_tup::int AS dead, s.autovacuum_count::int AS autovacuums,
             ((SELECT count(*) FROM pgpubsub.notifications WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS backlog,
             (SELECT count(*)::int FROM chaos_effects) AS processed
      FROM pg_stat_user_tables s WHERE s.relid = 'pgpubsub.notifications'::regclass`);
    const stats = workers.current();
    return {
      at: performance.now() - pace.startedAt,
      produced: committed(),
      processed: row!.processed,
      backlog: row!.backlog,
      sizeBytes: row!.size,
      heapBytes: row!.heap,
      live: row!.live,
      dead: row!.dead,
      autovacuums: row!.autovacuums,
      rssMb: stats.map((s) => (s ? mb(s.rss) : Number.NaN)),
      heapMb: stats.map((s) => (s ? mb(s.heapUsed) : Number.NaN)),
    };
  };
  const header =
    '   time  produced/s  processed/s  backlog  table MB  (heap MB)  live  dead  autovac  listener RSS MB (heap MB)';
  console.log(header);
  const print = (s: Sample, prev: Sample | undefined) => {
    const dt = (s.at - (prev?.at ?? 0)) / 1000;
    const line = [
      `${fmt(s.at / 60_000, 1).padStart(5)} m`,
      fmt((s.produced - (prev?.produced ?? 0)) / dt, 0).padStart(10),
      fmt((s.processed - (prev?.processed ?? 0)) / dt, 0).padStart(12),
      String(s.backlog).padStart(8),
      fmt(mb(s.sizeBytes), 2).padStart(9),
      `(${fmt(mb(s.heapBytes), 2)})`.padStart(10),
      String(s.live).padStart(5),
      String(s.dead).padStart(5),
      String(s.autovacuums).padStart(8),
      `  ${s.rssMb.map((r, i) => `${fmt(r)} (${fmt(s.heapMb[i]!)})`).join(', ')}`,
    ];
    console.log(line.join(' '));
  };

  let next = sampleMs;
  while (performance.now() - pace.startedAt < durationMs) {
    await sleep(Math.max(0, next - (performance.now() - pace.startedAt)));
    next += sampleMs;
    const s = await take();
    print(s, samples.at(-1));
    samples.push(s);
  }
  await production;

  // Drain, stop, check.
  const drainStart = performance.now();
  for (;;) {
    const [row] = await admin(
      `SELECT ((SELECT count(*) FROM pgpubsub.notifications WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed))::int AS n`,
    );
    if (row!.n === 0 || performance.now() - drainStart > 60_000) break;
    await sleep(200);
  }
  await workers.stopAll(15_000);
  await Promise.all(producers.map((p) => p.close()));
  const violations: string[] = [...workers.unclean];
  const { figures } = await verifyDelivery(admin, ledger, violations);
  await adminConn.end();

  // Summary by thirds of the run. The first third includes the warm-up until autovacuum first visits
  // the table (up to autovacuum_naptime); "flat" compares the middle and the last third.
  const third = Math.max(1, Math.floor(samples.length / 3));
  const parts = [
    samples.slice(0, third),
    samples.slice(third, samples.length - third),
    samples.slice(-third),
  ];
  const [first, middle, last] = parts.map((p) => (p.length ? p : samples)) as [Sample[], Sample[], Sample[]];
  const max = (xs: number[]) => Math.max(...xs);
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rssOf = (xs: Sample[]) => xs.flatMap((s) => s.rssMb.filter((r) => !Number.isNaN(r)));
  const row = (label: string, of: (xs: Sample[]) => string): string[] => [
    label,
    of(first),
    of(middle),
    of(last),
  ];
  const rows: string[][] = [
    ['', 'first third', 'middle third', 'last third'],
    row('table size MB (max)', (xs) => fmt(mb(max(xs.map((s) => s.sizeBytes))), 2)),
    row('dead tuples (max)', (xs) => String(max(xs.map((s) => s.dead)))),
    row('backlog (max)', (xs) => String(max(xs.map((s) => s.backlog)))),
    row('processed/s (avg)', (xs) => {
      const before = samples[samples.indexOf(xs[0]!) - 1];
      const end = xs.at(-1)!;
      return fmt((end.processed - (before?.processed ?? 0)) / ((end.at - (before?.at ?? 0)) / 1000), 0);
    }),
    row('listener RSS MB (avg)', (xs) => fmt(avg(rssOf(xs)))),
    row('listener RSS MB (max)', (xs) => fmt(max(rssOf(xs)))),
  ];
  const total = samples.at(-1)!;
  console.log(
    `\nsummary: ${figures.expected} notifications in ${minutes} min (${fmt(figures.expected / (durationMs / 1000), 0)}/s), ${total.autovacuums} autovacuums of pgpubsub.notifications`,
  );
  for (const r of rows)
    console.log(
      `  ${r[0]!.padEnd(24)}${r
        .slice(1)
        .map((c) => c.padStart(14))
        .join('')}`,
    );
  const sizeGrowth = max(last.map((s) => s.sizeBytes)) / Math.max(1, max(middle.map((s) => s.sizeBytes)));
  const rssGrowth = avg(rssOf(last)) / avg(rssOf(middle));
  console.log(
    `  last/middle third: table size ${fmt(sizeGrowth, 2)}×, listener RSS ${fmt(rssGrowth, 2)}× → ${sizeGrowth < 1.2 && rssGrowth < 1.15 ? 'flat' : 'GROWING'}`,
  );
  console.log(
    `  exactly once: ${figures.effects} effects for ${figures.expected} notifications, ${figures.dup_ids} duplicates, ${figures.lost} lost, ${figures.pending} pending, ${figures.failed} failed`,
  );
  for (const v of violations) console.log(`  ✗ ${v}`);
  exitCode = violations.length === 0 ? 0 : 1;
} catch (error) {
  console.error(`soak: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
  exitCode = 1;
} finally {
  workers.killAll();
  await server.stop();
}
process.exit(exitCode);
