import { bigserial, integer, pgTable, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import {
  channel,
  createListener,
  createTriggerSql,
  notify,
  resolveTriggerSpec,
  storageMigrationSql,
  triggerChannel,
} from '../../src/index.ts';
import { JOB, type System } from './types.ts';

/** The custom channel every workload of ours uses. */
export const noop = channel(JOB, v.object({ i: v.number() }));

/** Keys of the ordered variant: job `i` has key `i % ORDER_KEYS`, so each key has a queue of jobs. */
export const ORDER_KEYS = 1000;

/** The same channel, ordered: jobs of one key are handled one at a time, in commit order. */
export const noopOrdered = channel(JOB, v.object({ i: v.number() }), {
  key: (p) => String(p.i % ORDER_KEYS),
});

/** W4's table, written by many clients, with and without a trigger channel. */
export const items = pgTable('w4_items', {
  id: bigserial({ mode: 'number' }).primaryKey(),
  v: integer().notNull(),
  note: text(),
});
export const itemEvents = triggerChannel(items, { on: ['insert'] });

/** Statements that create W4's table, with the channel's trigger or without. */
export function itemsSql(withTrigger: boolean): string[] {
  return [
    'CREATE TABLE w4_items (id bigserial PRIMARY KEY, v integer NOT NULL, note text)',
    ...(withTrigger ? createTriggerSql(resolveTriggerSpec(itemEvents)) : []),
  ];
}

function client(url: string, max: number): postgres.Sql {
  return postgres(url, { max, onnotice: () => {} });
}

async function once<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = client(url, 1);
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Inserts `n` pending notifications in one statement, as a backlog (no wake-up: workers start after). */
export function bulkInsertSql(from: number, to: number, ordered = false): string {
  if (ordered) {
    return `INSERT INTO pgpubsub.notifications (channel, payload, ordering_key)
SELECT '${JOB}', jsonb_build_object('i', g), (g % ${ORDER_KEYS})::text FROM generate_series(${from}, ${to}) g`;
  }
  return `INSERT INTO pgpubsub.notifications (channel, payload)
SELECT '${JOB}', jsonb_build_object('i', g) FROM generate_series(${from}, ${to}) g`;
}

export const ours: System = {
  id: 'ours',
  version: 'drizzle-pgpubsub',
  async install(url) {
    await once(url, async (sql) => {
      for (const statement of storageMigrationSql()) await sql.unsafe(statement);
    });
  },
  async enqueueBulk(url, n, variant) {
    if (variant?.ordered) {
      await once(url, (sql) => sql.unsafe(bulkInsertSql(1, n, true)));
      return;
    }
    // The public API, as a user would: one notify() call with an array of payloads (one statement).
    await once(url, async (sql) => {
      const db = drizzle({ client: sql });
      const payloads = Array.from({ length: n }, (_, k) => ({ i: k + 1 }));
      await db.transaction((tx) => notify(tx, noop, payloads));
    });
  },
  async remaining(sql) {
    const [row] = await sql`SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE channel = ${JOB}`;
    return row!.n as number;
  },
  async maxPendingPerKey(sql) {
    const [row] =
      await sql`SELECT coalesce(max(c), 0)::int AS n FROM (SELECT count(*) AS c FROM pgpubsub.notifications
      WHERE channel = ${JOB} AND status = 'pending' AND dedup_key IS NOT NULL GROUP BY dedup_key) t`;
    return row!.n as number;
  },
  async startWorker(url, variant, onJob) {
    const sql = client(url, variant.concurrency + 1);
    const db = drizzle({ client: sql });
    const listener = createListener(db, {
      concurrency: variant.concurrency,
      ...(variant.batchSize ? { batchSize: variant.batchSize } : {}),
      // W1OTEL: the worker registered OpenTelemetry as BENCH_OTEL says before it reported ready.
      ...(variant.otel === 'plain' ? { tracing: false, metrics: false } : {}),
    });
    if (variant.channel === 'items') listener.on(itemEvents, (event) => onJob(event.new.id));
    else if (variant.ordered) listener.on(noopOrdered, ({ payload }) => onJob(payload.i));
    else listener.on(noop, ({ payload }) => onJob(payload.i));
    listener.events.on('error', ({ error, during }) =>
      console.error(`[ours] error during ${during}:`, error),
    );
    await listener.start();
    return {
      async stop() {
        await listener.stop({ timeoutMs: 10_000 });
        await sql.end({ timeout: 5 });
      },
    };
  },
  async producer(url, variant) {
    const sql = client(url, 8);
    const db = drizzle({ client: sql });
    const ch = variant?.ordered ? noopOrdered : noop;
    return {
      send: async (i) => {
        await db.transaction((tx) => notify(tx, ch, { i }));
      },
      sendDelayed: async (i, runAt) => {
        await db.transaction((tx) => notify(tx, ch, { i }, { runAt }));
      },
      sendKeyed: async (i, key) => {
        const r = await db.transaction((tx) => notify(tx, noop, { i }, { key, onDuplicate: 'skip' }));
        return r.outcome === 'inserted';
      },
      close: () => sql.end({ timeout: 5 }),
    };
  },
};
