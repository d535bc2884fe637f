/**
 * Priorities (issue 17): within a channel higher priorities are claimed first, but every claim of 4
 * or more rows keeps a quarter for the oldest due rows (the FIFO lane), so a stream of prioritised
 * work cannot starve the rest. Claims stay O(batch): EXPLAIN shows both lanes on their indexes.
 */
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { notify } from '../src/notify.ts';
import { priorityShare, rawClaimSql } from '../src/runtime/claim-sql.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { storageMigrationSql } from '../src/storage/notifications.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();
const jobs = channel('prio_jobs', v.object({ n: v.number(), p: v.number() }));

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.stop({ timeoutMs: 10_000 });
  listener = undefined;
  await t.sql`DELETE FROM pgpubsub.notifications`;
});

async function send(p: number, ns: number[]): Promise<void> {
  await notify(
    t.db,
    jobs,
    ns.map((n) => ({ n, p })),
    p === 0 ? {} : { priority: p },
  );
}

/** Runs a listener (one claim at a time, handlers in claim order) until `count` handlers ran. */
async function handleAll(batchSize: number, count: number): Promise<{ n: number; p: number }[]> {
  const order: { n: number; p: number }[] = [];
  listener = createListener(t.db, { concurrency: 1, batchSize, pollIntervalMs: false }).on(
    jobs,
    ({ payload }) => {
      order.push(payload);
    },
  );
  await listener.start();
  await waitFor(() => order.length === count, { timeoutMs: 30_000, what: `${count} handlers` });
  return order;
}

describe('priority', () => {
  it('claims higher priorities first, keeping a share of each claim for the oldest rows', async () => {
    await send(0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await send(5, [11, 12, 13]);
    await send(10, [14, 15, 16, 17, 18]);
    expect(priorityShare(8)).toBe(6);
    const order = await handleAll(8, 18);
    // First claim: 6 from the priority lane (10s then the first 5), 2 from the FIFO lane (oldest).
    expect(order.slice(0, 8).map((o) => o.n)).toEqual([14, 15, 16, 17, 18, 11, 1, 2]);
    // Second claim: the rest of the priority lane, then FIFO.
    expect(order.slice(8, 10).map((o) => o.n)).toEqual([12, 13]);
    expect(order.slice(10).map((o) => o.n)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('a stream of prioritised work does not starve unprioritised rows', async () => {
    await send(0, [1, 2, 3]);
    await send(
      1,
      Array.from({ length: 40 }, (_, i) => 100 + i),
    );
    const order = await handleAll(4, 43);
    // Each claim of 4 takes one FIFO row: the three old rows run in the first three claims.
    const positions = [1, 2, 3].map((n) => order.findIndex((o) => o.n === n));
    expect(Math.max(...positions)).toBeLessThan(12);
  });

  it('claims are O(batch): both lanes read their index, nothing scans or sorts the backlog', async () => {
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload, priority)
      SELECT 'prio_jobs', jsonb_build_object('n', i, 'p', 0), CASE WHEN i % 10 = 0 THEN 3 ELSE 0 END
      FROM generate_series(1, 20000) AS i`;
    await t.sql`ANALYZE pgpubsub.notifications`;
    const query = rawClaimSql('"pgpubsub"."notifications"', false, { limit: 100 });
    const plan = await t.sql.begin(async (tx) => {
      const rows = await tx.unsafe(`EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF, TIMING OFF) ${query}`, [
        'prio_jobs',
      ]);
      return rows.map((r) => r['QUERY PLAN'] as string).join('\n');
    });
    expect(plan).toMatch(/Index Scan using notifications_priority_idx/);
    expect(plan).toMatch(/Index Scan using notifications_claim_idx/);
    expect(plan).not.toMatch(/Seq Scan/);
    // Rows read by each lane stay near the batch, whatever the 20 000-row backlog.
    for (const m of plan.matchAll(/Index Scan using \w+ on notifications.*\n.*?actual rows=(\d+)/g)) {
      expect(Number(m[1])).toBeLessThanOrEqual(200);
    }
  });

  it('storage version 3 upgrades in place: rows kept with priority 0, keys and priorities work after', async () => {
    // A version-3 install: today's DDL without the version-4 columns and function.
    for (const statement of storageMigrationSql('jobs_v3')) await t.sql.unsafe(statement);
    await t.sql.unsafe('ALTER TABLE jobs_v3.notifications DROP COLUMN dedup_key, DROP COLUMN priority');
    await t.sql.unsafe('DROP FUNCTION jobs_v3.notify_many(text, jsonb, jsonb)');
    await t.sql.unsafe(
      `INSERT INTO jobs_v3.notifications (channel, payload) VALUES ('prio_jobs', '{"n": 1, "p": 0}')`,
    );
    for (const statement of storageMigrationSql('jobs_v3')) await t.sql.unsafe(statement);
    const sent = await notify(t.db, jobs, { n: 2, p: 7 }, { schema: 'jobs_v3', key: 'a', priority: 7 });
    expect(sent.outcome).toBe('inserted');
    expect(await t.sql`SELECT payload, priority, dedup_key FROM jobs_v3.notifications ORDER BY id`).toEqual([
      { payload: { n: 1, p: 0 }, priority: 0, dedup_key: null },
      { payload: { n: 2, p: 7 }, priority: 7, dedup_key: 'a' },
    ]);
    const order: number[] = [];
    listener = createListener(t.db, { schema: 'jobs_v3', concurrency: 1, pollIntervalMs: false }).on(
      jobs,
      ({ payload }) => {
        order.push(payload.n);
      },
    );
    await listener.start();
    await waitFor(() => order.length === 2, { timeoutMs: 30_000, what: 'both handled' });
    expect(order).toEqual([2, 1]);
    await t.sql.unsafe('DROP SCHEMA jobs_v3 CASCADE');
  });
});
