import { sql as dsql } from 'drizzle-orm';
import { pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { MAX_SUBTRANSACTIONS } from '../src/runtime/claim-sql.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const effects = pgTable('effects', {
  id: serial().primaryKey(),
  key: text().notNull().unique(),
  xid: text(),
});
const jobs = channel('jobs', v.object({ n: v.number() }));

const t = useTestDatabase([
  'CREATE TABLE effects (id serial PRIMARY KEY, key text NOT NULL UNIQUE, xid text)',
]);

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

async function enqueue(n: number): Promise<void> {
  await t.sql`INSERT INTO pgpubsub.notifications (channel, payload)
    SELECT 'jobs', jsonb_build_object('n', g) FROM generate_series(1, ${n}::int) g`;
}

/** Sizes of the claim transactions that handled the effects, in commit order (by the effects' ids). */
async function transactionSizes(): Promise<number[]> {
  const rows = await t.sql<{ xid: string; n: number }[]>`
    SELECT xid, count(*)::int AS n, min(id) AS first FROM effects GROUP BY xid ORDER BY first`;
  return rows.map((r) => r.n);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('batching', () => {
  it('commits writing handlers in transactions of at most MAX_SUBTRANSACTIONS savepoints', async () => {
    await enqueue(150);
    const l = createListener(t.db, { concurrency: 1, batchSize: 100, pollIntervalMs: false }).on(
      jobs,
      async ({ payload }, tx) => {
        await tx.insert(effects).values({ key: `k${payload.n}`, xid: dsql`txid_current()::text` });
      },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { timeoutMs: 20_000 });
    const sizes = await transactionSizes();
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(150);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_SUBTRANSACTIONS);
    expect(sizes[0]).toBe(MAX_SUBTRANSACTIONS);
  });

  it('sizes batches by how long handlers take', async () => {
    await enqueue(8);
    const l = createListener(t.db, { concurrency: 1, batchSize: 5, pollIntervalMs: false }).on(
      jobs,
      async ({ payload }, tx) => {
        await tx.insert(effects).values({ key: `k${payload.n}`, xid: dsql`txid_current()::text` });
        await sleep(60); // the handler's own work: a batch is sized to take about 200 ms
      },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { timeoutMs: 20_000 });
    const sizes = await transactionSizes();
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(8);
    expect(sizes[0]).toBe(5);
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(3);
  });

  it('handles a notification that lands behind the overlapping claims exactly once', async () => {
    await enqueue(600);
    let handled = 0;
    const l = createListener(t.db, { concurrency: 4, batchSize: 10, pollIntervalMs: false }).on(
      jobs,
      async ({ payload }, tx) => {
        handled++;
        await tx.insert(effects).values({ key: `k${payload.n}` });
      },
    );
    running.push(l);
    await l.start();
    await waitFor(() => handled >= 100);
    // Ready an hour ago: it sorts before every row the claims have passed.
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload, run_at)
      VALUES ('jobs', '{"n": 0}', now() - interval '1 hour')`;
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { timeoutMs: 20_000 });
    const [row] = await t.sql<{ n: number; distinct: number }[]>`
      SELECT count(*)::int AS n, count(DISTINCT key)::int AS distinct FROM effects`;
    expect(row).toEqual({ n: 601, distinct: 601 });
    expect(handled).toBe(601);
  });

  it('works on a client that may not prepare statements (PgBouncer in transaction mode)', async () => {
    await enqueue(300);
    const unprepared = t.client({ max: 5, prepare: false });
    const l = createListener(drizzle({ client: unprepared }), { concurrency: 3, pollIntervalMs: false }).on(
      jobs,
      async ({ payload }, tx) => {
        await tx.insert(effects).values({ key: `k${payload.n}` });
      },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { timeoutMs: 20_000 });
    const [row] = await t.sql<{ n: number; distinct: number }[]>`
      SELECT count(*)::int AS n, count(DISTINCT key)::int AS distinct FROM effects`;
    expect(row).toEqual({ n: 300, distinct: 300 });
    const [prepared] = await unprepared<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM pg_prepared_statements`;
    expect(prepared!.n).toBe(0);
  });
});
