import { type ConstructorOptions, PgBoss } from 'pg-boss';
import postgres from 'postgres';
import { DEDUP_QUEUE, JOB, type System } from './types.ts';

/** Base polling interval (pg-boss's minimum, 0.5 s): used only while LISTEN/NOTIFY is not established. */
const POLL_SECONDS = 0.5;
/** Backstop polling while LISTEN/NOTIFY is active: pg-boss's default (30 s) unless the variant says otherwise. */
const NOTIFY_POLL_SECONDS = 30;

function boss(url: string, max: number, options: ConstructorOptions = {}): PgBoss {
  const b = new PgBoss({ connectionString: url, max, ...options });
  b.on('error', (error) => console.error('[pg-boss] error', error));
  return b;
}

type Executor = { executeSql: (text: string, values?: unknown[]) => Promise<{ rows: any[] }> };

/**
 * pg-boss 12 (needs Node ≥ 22.12) on its documented fast path: `useListenNotify: true` on the
 * instance, queues created with `notify: true`, one `work()` with `localConcurrency` C, `batchSize`
 * and `burstWhenBatchFull` (fetch again at once while batches come back full). The dedup queue has
 * policy `exclusive`: one job queued or active per singletonKey, as ours counts a notification being
 * handled as pending.
 */
export const pgboss: System = {
  id: 'pgboss',
  version: 'pg-boss 12',
  async install(url) {
    const b = boss(url, 2);
    await b.start();
    await b.createQueue(JOB, { notify: true });
    await b.createQueue(DEDUP_QUEUE, { notify: true, policy: 'exclusive' });
    await b.stop({ graceful: false });
  },
  async enqueueBulk(url, n) {
    const b = boss(url, 2, { supervise: false, schedule: false, migrate: false });
    await b.start();
    const chunk = 50_000;
    for (let from = 1; from <= n; from += chunk) {
      const jobs = [];
      for (let i = from; i < Math.min(n + 1, from + chunk); i++) jobs.push({ data: { i } });
      await b.insert(JOB, jobs);
    }
    await b.stop({ graceful: false });
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
    // Pool: the localConcurrency fetch loops, their completions, and the dedicated LISTEN connection.
    const b = boss(url, variant.concurrency + 4, { useListenNotify: true });
    await b.start();
    await b.work<{ i: number }>(
      variant.dedup ? DEDUP_QUEUE : JOB,
      {
        localConcurrency: variant.concurrency,
        batchSize: variant.batchSize ?? 1,
        burstWhenBatchFull: true,
        pollingIntervalSeconds: POLL_SECONDS,
        notifyPollingIntervalSeconds: variant.notifyPollSeconds ?? NOTIFY_POLL_SECONDS,
      },
      async (jobs) => {
        for (const job of jobs) onJob(job.data.i);
      },
    );
    return {
      async stop() {
        await b.stop({ graceful: true, timeout: 10_000 });
      },
    };
  },
  async producer(url, variant) {
    const b = boss(url, 2, { supervise: false, schedule: false, migrate: false });
    await b.start();
    const sql = postgres(url, { max: 8, onnotice: () => {} });
    const queue = variant?.dedup ? DEDUP_QUEUE : JOB;
    const inTx = <T>(fn: (db: Executor) => Promise<T>) =>
      sql.begin((tx) =>
        fn({
          executeSql: async (text, values = []) => ({
            // postgres.js refuses `undefined` parameters; pg (pg-boss's own driver) sends them as NULL.
            rows: await tx.unsafe(text, values.map((v) => v ?? null) as any[]),
          }),
        }),
      ) as Promise<T>;
    return {
      async send(i) {
        await inTx((db) => b.send(queue, { i }, { db }));
      },
      async sendDelayed(i, runAt) {
        await inTx((db) => b.send(queue, { i }, { db, startAfter: runAt }));
      },
      async sendKeyed(i, key) {
        const id = await inTx((db) => b.send(queue, { i }, { db, singletonKey: key }));
        return id !== null;
      },
      async close() {
        await b.stop({ graceful: false });
        await sql.end({ timeout: 5 });
      },
    };
  },
};
