import { EventEmitter } from 'node:events';
import { Logger, run, runMigrations } from 'graphile-worker';
import postgres from 'postgres';
import { JOB, type System } from './types.ts';

const silent = new Logger(() => () => {});

async function once<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * graphile-worker 0.17.3. `batched` is the configuration its own performance test uses (local queue,
 * batched completion); otherwise its defaults (pollInterval 2000, maxPoolSize 10).
 */
export const graphile: System = {
  id: 'graphile',
  async install(url) {
    await runMigrations({ connectionString: url, logger: silent });
  },
  async enqueueBulk(url, n) {
    // add_jobs() is what WorkerUtils.addJobs() calls; the specs are built server-side.
    await once(
      url,
      (sql) => sql`SELECT count(*) FROM graphile_worker.add_jobs(array(
        SELECT json_populate_record(null::graphile_worker.job_spec,
          json_build_object('identifier', ${JOB}::text, 'payload', json_build_object('i', g)))
        FROM generate_series(1, ${n}::int) g))`,
    );
  },
  async remaining(sql) {
    const [row] = await sql`SELECT count(*)::int AS n FROM graphile_worker._private_jobs`;
    return row!.n as number;
  },
  async startWorker(url, variant, onJob) {
    const events = new EventEmitter();
    events.on('pool:listen:error', ({ error }) => console.error('[graphile] listen error', error));
    const runner = await run({
      connectionString: url,
      concurrency: variant.concurrency,
      noHandleSignals: true,
      logger: silent,
      events: events as any,
      taskList: {
        [JOB]: async (payload) => {
          onJob((payload as { i: number }).i);
        },
      },
      ...(variant.batched
        ? {
            preset: {
              worker: {
                maxPoolSize: variant.concurrency + 1,
                localQueue: { size: variant.batchSize ?? 50 },
                completeJobBatchDelay: 0,
                failJobBatchDelay: 0,
              },
            },
          }
        : {}),
    });
    return {
      async stop() {
        await runner.stop();
      },
    };
  },
  async producer(url) {
    const sql = postgres(url, { max: 8, onnotice: () => {} });
    return {
      async send(i) {
        await sql.begin(
          (tx) => tx`SELECT graphile_worker.add_job(${JOB}, json_build_object('i', ${i}::int))`,
        );
      },
      close: () => sql.end({ timeout: 5 }),
    };
  },
};
