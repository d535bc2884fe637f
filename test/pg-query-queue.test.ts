import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

// pg 8 deprecates a client.query() made while the client still runs another (it queues the call
// and warns; pg 9 removes the queue). The node-postgres adapter queues statements per client itself
// (src/runtime/drivers/node-postgres.ts), so a listener on a pg.Pool must never trigger that warning.
// Node prints a deprecation once per process and vitest runs each file in a process of its own
// (pool: forks), so this file starts clean; it builds its pg.Pool itself, whatever
// PGPUBSUB_TEST_DRIVER says.

const jobs = channel('pg_queue_jobs', v.object({ n: v.number(), fail: v.optional(v.boolean()) }));
const batch = channel('pg_queue_batch', v.object({ n: v.number() }));
const leased = channel('pg_queue_lease', v.object({ n: v.number() }));

const t = useTestDatabase(['CREATE TABLE done (n int NOT NULL, via text NOT NULL)']);

const warnings: Error[] = [];
const collect = (warning: Error) => void warnings.push(warning);
let noDeprecation = false;
beforeAll(() => {
  // A NODE_OPTIONS=--no-deprecation would hide the warning from this test: turn it back on.
  noDeprecation = process.noDeprecation ?? false;
  process.noDeprecation = false;
  process.on('warning', collect);
});
afterAll(() => {
  process.off('warning', collect);
  process.noDeprecation = noDeprecation;
});

describe('node-postgres adapter', () => {
  it('never calls client.query() while the client runs another: claims, handler transactions, retries, batches and leases raise no pg deprecation', async () => {
    const pool = new pg.Pool({ connectionString: t.url, max: 6 });
    pool.on('error', () => {});
    const db = drizzle({ client: pool }) as unknown as Parameters<typeof createListener>[0];
    const attempts = new Map<number, number>();
    const listener = createListener(db, { pollIntervalMs: 100, concurrency: 2, backoff: () => 0 })
      .on(jobs, async ({ payload }, tx) => {
        const seen = (attempts.get(payload.n) ?? 0) + 1;
        attempts.set(payload.n, seen);
        // Several statements of one handler at once: queued on the claim's connection.
        await Promise.all([
          tx.execute(dsql`SELECT pg_sleep(0.001)`),
          tx.execute(dsql`INSERT INTO done VALUES (${payload.n}, 'jobs')`),
          tx.execute(dsql`SELECT 1`),
        ]);
        if (payload.fail && seen === 1) throw new Error('first attempt fails (savepoint rollback)');
      })
      .onBatch(
        batch,
        async (events, tx) => {
          for (const e of events) await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n}, 'batch')`);
        },
        { size: 5, maxWaitMs: 50 },
      )
      .on(
        leased,
        async ({ payload }) => {
          await pool.query('INSERT INTO done VALUES ($1, $2)', [payload.n, 'lease']);
        },
        { lease: '10s' },
      );
    await listener.start();
    try {
      await db.transaction(async (tx) => {
        for (let n = 0; n < 20; n++) await notify(tx, jobs, { n, fail: n % 5 === 0 });
        for (let n = 0; n < 10; n++) await notify(tx, batch, { n });
        for (let n = 0; n < 5; n++) await notify(tx, leased, { n });
      });
      await waitFor(
        async () => {
          const c = await countNotifications(t.sql);
          return c.pending === 0 && c.failed === 0;
        },
        { what: 'every notification to be handled' },
      );
    } finally {
      await listener.stop({ timeoutMs: 5000 });
      await pool.end();
    }
    // Each job once (the failed first attempts rolled back), each batch item and lease once.
    expect(await t.sql`SELECT via, count(*)::int AS n FROM done GROUP BY via ORDER BY via`).toEqual([
      { via: 'batch', n: 10 },
      { via: 'jobs', n: 20 },
      { via: 'lease', n: 5 },
    ]);
    expect([...attempts.values()].filter((a) => a === 2)).toHaveLength(4);
    expect(warnings.map((w) => `${w.name}: ${w.message}`).filter((w) => /pg@9|deprecat/i.test(w))).toEqual(
      [],
    );
  });
});
