import PgBoss from 'pg-boss-10';
import postgres from 'postgres';
import { DEDUP_QUEUE, JOB, type System } from './types.ts';

/** Polling interval of the benchmark configuration (pg-boss 10 allows no less than 0.5 s). */
const POLL_SECONDS = 0.5;

function boss(url: string, max: number, options: PgBoss.ConstructorOptions = {}): PgBoss {
  const b = new PgBoss({ connectionString: url, max, ...options });
  b.on('error', (error) => console.error('[pg-boss 10] error', error));
  return b;
}

/**
 * pg-boss 10.4.2, the pin of the earlier runs (npm alias `pg-boss-10`). It has no `localConcurrency`
 * option and no LISTEN/NOTIFY (both came in later majors): concurrency C is C `work()` loops, each
 * fetching `batchSize` jobs and sleeping the polling interval after every fetch. Its dedup queue is
 * `stately` (this version has no `exclusive` policy): one job queued and one active per singletonKey.
 */
export const pgboss10: System = {
  id: 'pgboss10',
  version: 'pg-boss 10.4.2',
  async install(url) {
    const b = boss(url, 2);
    await b.start();
    await b.createQueue(JOB);
    await b.createQueue(DEDUP_QUEUE, { name: DEDUP_QUEUE, policy: 'stately' });
    await b.stop({ graceful: false, wait: true });
  },
  async enqueueBulk(url, n) {
    const b = boss(url, 2, { supervise: false, schedule: false, migrate: false });
    await b.start();
    const chunk = 50_000;
    for (let from = 1; from <= n; from += chunk) {
      const jobs = [];
      for (let i = from; i < Math.min(n + 1, from + chunk); i++) jobs.push({ name: JOB, data: { i } });
      await b.insert(jobs);
    }
    await b.stop({ graceful: false, wait: true });
  },
  async remaining(sql) {
    const [row] =
      await sql`SELECT count(*)::int AS n FROM pgboss.job WHERE name IN (${JOB}, ${DEDUP_QUEUE}) AND state <> 'completed'`;
    return row!.n as number;
  },
  async maxPendingPerKey(sql) {
    const [row] = await sql`SELECT coalesce(max(c), 0)::int AS n FROM (SELECT count(*) AS c FROM pgboss.job
      WHERE name = ${DEDUP_QUEUE} AND state IN ('created', 'retry', 'active') GROUP BY singleton_key) t`;
    return row!.n as number;
  },
  async startWorker(url, variant, onJob) {
    const b = boss(url, variant.concurrency + 4);
    await b.start();
    for (let w = 0; w < variant.concurrency; w++) {
      await b.work<{ i: number }>(
        variant.dedup ? DEDUP_QUEUE : JOB,
        { batchSize: variant.batchSize ?? 1, pollingIntervalSeconds: POLL_SECONDS },
        async (jobs) => {
          for (const job of jobs) onJob(job.data.i);
        },
      );
    }
    return {
      async stop() {
        await b.stop({ graceful: true, wait: true, timeout: 10_000 });
      },
    };
  },
  async producer(url, variant) {
    const b = boss(url, 2, { supervise: false, schedule: false, migrate: false });
    await b.start();
    const sql = postgres(url, { max: 8, onnotice: () => {} });
    const queue = variant?.dedup ? DEDUP_QUEUE : JOB;
    const inTx = (
      fn: (db: { executeSql: (t: string, v: unknown[]) => Promise<{ rows: any[] }> }) => Promise<unknown>,
    ) =>
      sql.begin(async (tx) => {
        await fn({
          executeSql: async (text: string, values: unknown[]) => ({
            // postgres.js refuses `undefined` parameters; pg (pg-boss's own driver) sends them as NULL.
            rows: await tx.unsafe(text, values.map((v) => v ?? null) as any[]),
          }),
        });
      });
    return {
      async send(i) {
        await inTx((db) => b.send(queue, { i }, { db }));
      },
      async sendDelayed(i, runAt) {
        await inTx((db) => b.send(queue, { i }, { db, startAfter: runAt }));
      },
      async sendKeyed(i, key) {
        let id: string | null = null;
        await inTx(async (db) => {
          id = await b.send(queue, { i }, { db, singletonKey: key });
        });
        return id !== null;
      },
      async close() {
        await b.stop({ graceful: false, wait: true });
        await sql.end({ timeout: 5 });
      },
    };
  },
};
