import PgBoss from 'pg-boss';
import postgres from 'postgres';
import { JOB, type System } from './types.ts';

/** Polling interval of the benchmark configuration (pg-boss 10 allows no less than 0.5 s). */
const POLL_SECONDS = 0.5;

function boss(url: string, max: number, options: PgBoss.ConstructorOptions = {}): PgBoss {
  const b = new PgBoss({ connectionString: url, max, ...options });
  b.on('error', (error) => console.error('[pg-boss] error', error));
  return b;
}

/**
 * pg-boss 10.4.2. It has no `localConcurrency` option (added in a later major) and no LISTEN/NOTIFY:
 * concurrency C is C `work()` loops, each fetching `batchSize` jobs and sleeping the polling interval
 * after every fetch.
 */
export const pgboss: System = {
  id: 'pgboss',
  async install(url) {
    const b = boss(url, 2);
    await b.start();
    await b.createQueue(JOB);
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
      await sql`SELECT count(*)::int AS n FROM pgboss.job WHERE name = ${JOB} AND state <> 'completed'`;
    return row!.n as number;
  },
  async startWorker(url, variant, onJob) {
    const b = boss(url, variant.concurrency + 4);
    await b.start();
    for (let w = 0; w < variant.concurrency; w++) {
      await b.work<{ i: number }>(
        JOB,
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
  async producer(url) {
    const b = boss(url, 2, { supervise: false, schedule: false, migrate: false });
    await b.start();
    const sql = postgres(url, { max: 8, onnotice: () => {} });
    return {
      async send(i) {
        await sql.begin(async (tx) => {
          const db = {
            executeSql: async (text: string, values: unknown[]) => ({
              // postgres.js refuses `undefined` parameters; pg (pg-boss's own driver) sends them as NULL.
              rows: await tx.unsafe(text, values.map((v) => v ?? null) as any[]),
            }),
          };
          await b.send(JOB, { i }, { db });
        });
      },
      async close() {
        await b.stop({ graceful: false, wait: true });
        await sql.end({ timeout: 5 });
      },
    };
  },
};
