import { EventEmitter } from 'node:events';
import postgres from 'postgres';
import { JOB, type Producer, type System, type SystemId } from './types.ts';

/** The parts of graphile-worker's module the adapter uses (the same in 0.17 and 0.18). */
export interface GraphileModule {
  run(options: any): Promise<{ stop(): Promise<void> }>;
  runMigrations(options: any): Promise<void>;
  Logger: new (factory: () => () => void) => unknown;
}

async function once<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * A graphile-worker adapter over one installed version. `batched` is the configuration its own
 * performance test uses (local queue, batched completion); otherwise its defaults (pollInterval 2000,
 * maxPoolSize 10).
 */
export function graphileSystem(id: SystemId, version: string, mod: GraphileModule): System {
  const silent = new mod.Logger(() => () => {});
  return {
    id,
    version,
    async install(url) {
      await mod.runMigrations({ connectionString: url, logger: silent });
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
    async maxPendingPerKey(sql) {
      // unsafe_dedupe never takes the key off a job, so a job keeps its key until it is deleted (done).
      const [row] = await sql`SELECT coalesce(max(c), 0)::int AS n FROM (SELECT count(*) AS c
        FROM graphile_worker._private_jobs WHERE key IS NOT NULL GROUP BY key) t`;
      return row!.n as number;
    },
    async startWorker(url, variant, onJob) {
      const events = new EventEmitter();
      events.on('pool:listen:error', ({ error }) => console.error(`[${id}] listen error`, error));
      const runner = await mod.run({
        connectionString: url,
        concurrency: variant.concurrency,
        noHandleSignals: true,
        logger: silent,
        events,
        taskList: {
          [JOB]: async (payload: unknown) => {
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
    async producer(url): Promise<Producer> {
      const sql = postgres(url, { max: 8, onnotice: () => {} });
      return {
        async send(i) {
          await sql.begin(
            (tx) => tx`SELECT graphile_worker.add_job(${JOB}, json_build_object('i', ${i}::int))`,
          );
        },
        async sendDelayed(i, runAt) {
          await sql.begin(
            (tx) =>
              tx`SELECT graphile_worker.add_job(${JOB}, json_build_object('i', ${i}::int), run_at => ${runAt.toISOString()}::timestamptz)`,
          );
        },
        async sendKeyed(i, key) {
          // unsafe_dedupe: keep the existing job of the key, even a running one (ours `skip` does the same).
          const [row] = await sql.begin(
            (tx) =>
              tx`SELECT (j.payload->>'i')::int AS i FROM graphile_worker.add_job(${JOB}, json_build_object('i', ${i}::int),
                job_key => ${key}, job_key_mode => 'unsafe_dedupe') j`,
          );
          return row?.i === i;
        },
        close: () => sql.end({ timeout: 5 }),
      };
    },
  };
}
