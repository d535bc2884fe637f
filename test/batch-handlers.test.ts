import { sql as dsql } from 'drizzle-orm';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const jobs = channel('jobs', v.object({ n: v.number() }));

const t = useTestDatabase(['CREATE TABLE effects (n int PRIMARY KEY, xid text NOT NULL)']);

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

async function enqueue(n: number, channelName = 'jobs'): Promise<void> {
  await t.sql`INSERT INTO pgpubsub.notifications (channel, payload)
    SELECT ${channelName}, jsonb_build_object('n', g) FROM generate_series(1, ${n}::int) g`;
}

describe('batch handlers', () => {
  it('hands events over in calls of at most `size`, each in one transaction with its deletions', async () => {
    await enqueue(25);
    const sizes: number[] = [];
    const l = createListener(t.db, { pollIntervalMs: false }).onBatch(
      jobs,
      async (events, tx) => {
        sizes.push(events.length);
        await tx.execute(dsql`INSERT INTO effects (n, xid)
          SELECT n, txid_current()::text FROM unnest(${`{${events.map((e) => e.payload.n).join(',')}}`}::int[]) AS n`);
      },
      { size: 10 },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'all handled' });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(25);
    expect(Math.max(...sizes)).toBe(10);
    const rows = await t.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM effects GROUP BY xid`;
    expect(rows.map((r) => r.n).sort((a, b) => a - b)).toEqual([...sizes].sort((a, b) => a - b));
  });

  it('retries the events the handler names as failed and deletes the others', async () => {
    await enqueue(6);
    const l = createListener(t.db, { maxAttempts: 2, backoff: () => 0 }).onBatch(jobs, async (events, tx) => {
      const odd = events.filter((e) => e.payload.n % 2 === 1);
      const even = events.filter((e) => e.payload.n % 2 === 0);
      for (const e of even) await tx.execute(dsql`INSERT INTO effects (n, xid) VALUES (${e.payload.n}, 'x')`);
      return { failed: odd.map((event) => ({ event, error: new Error(`odd ${event.payload.n}`) })) };
    });
    const summary = await l.drain();
    expect(summary).toMatchObject({ processed: 3, retried: 3, dead: 3 });
    const effects = await t.sql<{ n: number }[]>`SELECT n FROM effects ORDER BY n`;
    expect(effects.map((r) => r.n)).toEqual([2, 4, 6]);
    const failed = await t.sql<{ n: number; attempts: number; last_error: string }[]>`
      SELECT (payload->>'n')::int AS n, attempts, last_error FROM pgpubsub.notifications
      WHERE status = 'failed' ORDER BY n`;
    expect(failed.map((r) => [r.n, r.attempts])).toEqual([
      [1, 2],
      [3, 2],
      [5, 2],
    ]);
    expect(failed[0]!.last_error).toContain('odd 1');
  });

  it('a thrown error rolls back the call and fails every event of it', async () => {
    await enqueue(4);
    let calls = 0;
    const l = createListener(t.db, { maxAttempts: 5, backoff: () => 60_000 }).onBatch(
      jobs,
      async (events, tx) => {
        calls++;
        await tx.execute(dsql`INSERT INTO effects (n, xid) VALUES (${events[0]!.payload.n}, 'x')`);
        throw new Error('bulk API down');
      },
    );
    const summary = await l.drain();
    expect(calls).toBe(1);
    expect(summary).toMatchObject({ processed: 0, retried: 4, dead: 0 });
    expect(await t.sql`SELECT * FROM effects`).toHaveLength(0);
    const rows = await t.sql<{ attempts: number; last_error: string }[]>`
      SELECT attempts, last_error FROM pgpubsub.notifications WHERE status = 'pending'`;
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      expect(r.attempts).toBe(1);
      expect(r.last_error).toContain('bulk API down');
    }
  });

  it('a result naming an event outside the batch fails the whole call', async () => {
    await enqueue(2);
    const l = createListener(t.db, { maxAttempts: 1 }).onBatch(jobs, async (_events, tx) => {
      await tx.execute(dsql`INSERT INTO effects (n, xid) VALUES (99, 'x')`);
      return { failed: [{ event: { id: '123456789' }, error: 'nope' }] };
    });
    expect(await l.drain()).toMatchObject({ processed: 0, dead: 2 });
    expect(await t.sql`SELECT * FROM effects`).toHaveLength(0);
    const [row] = await t.sql<
      { last_error: string }[]
    >`SELECT last_error FROM pgpubsub.notifications LIMIT 1`;
    expect(row!.last_error).toContain('not in its batch');
  });

  it('waits up to maxWaitMs to fill a batch, and hands a trickle over in one call', async () => {
    const sizes: number[] = [];
    const l = createListener(t.db, { pollIntervalMs: false }).onBatch(
      jobs,
      (events) => {
        sizes.push(events.length);
      },
      { size: 50, maxWaitMs: 2000 },
    );
    running.push(l);
    await l.start();
    // Five separate producer transactions, one after another, well within the wait.
    for (let i = 1; i <= 5; i++) {
      await t.sql`INSERT INTO pgpubsub.notifications (channel, payload) VALUES ('jobs', jsonb_build_object('n', ${i}::int))`;
    }
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'all handled' });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(5);
    // Under heavy load the inserts may straddle the wait; they still arrive in few calls, not five.
    expect(sizes.length).toBeLessThan(5);
  });

  it('refuses bad options with a clear message', () => {
    const l = createListener(t.db);
    expect(() => l.onBatch(jobs, () => {}, { size: 0 })).toThrow(/`size` must be a positive integer/);
    expect(() => l.onBatch(jobs, () => {}, { maxWaitMs: -1 })).toThrow(/`maxWaitMs`/);
    const broadcast = channel('bc', v.object({}), { broadcast: true });
    // @ts-expect-error batch handlers are for durable channels
    expect(() => l.onBatch(broadcast, () => {})).toThrow(/durable channels/);
  });
});
