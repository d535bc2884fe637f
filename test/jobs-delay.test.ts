/**
 * Delayed notifications (issue 17, "Delay"): `runAt`/`delayMs` store a future `run_at`; a sleeping
 * listener wakes when it is due with no safety sweep (pollIntervalMs: false) and no polling: the
 * producer's NOTIFY `at:<ms>` arms a timer, or the listener's idle probe read min(run_at). A producer
 * whose row is due after one already pending sends no NOTIFY. Bulk sends are tested here too.
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { notify } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();
const jobs = channel('delayed_jobs', v.object({ n: v.number() }));

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.stop({ timeoutMs: 10_000 });
  listener = undefined;
  await t.sql`DELETE FROM pgpubsub.notifications`;
});

/** Payloads of every NOTIFY on the channel, read on a LISTEN connection of the test's own. */
const hints: string[] = [];
let listenClient: postgres.Sql;
beforeAll(async () => {
  listenClient = t.client({ max: 1 });
  await listenClient.listen(jobs.name, (payload) => hints.push(payload));
});
afterAll(async () => {
  await listenClient.end({ timeout: 5 });
});

/** Starts a listener with no safety sweep, recording the `n` it handles and when (DB clock). */
async function start(handled: { n: number; late: boolean }[]): Promise<Listener> {
  const l = createListener(t.db, { pollIntervalMs: false, idleWaitMs: 200 }).on(
    jobs,
    async ({ payload, id }) => {
      // The row is due when its handler runs (the claim reads run_at <= now()).
      const [row] =
        await t.sql`SELECT run_at <= clock_timestamp() AS late FROM pgpubsub.notifications WHERE id = ${id}`;
      handled.push({ n: payload.n, late: row?.late === true });
    },
  );
  await l.start();
  listener = l;
  return l;
}

describe('delayed notifications', () => {
  it('stores run_at from delayMs and runAt, and refuses bad options before writing', async () => {
    const runAt = new Date(Date.now() + 3_600_000);
    const a = await t.db.transaction((tx) => notify(tx, jobs, { n: 1 }, { runAt }));
    const b = await t.db.transaction((tx) => notify(tx, jobs, { n: 2 }, { delayMs: 7_200_000 }));
    expect(a.outcome).toBe('inserted');
    const rows = await t.sql`SELECT id, (extract(epoch FROM run_at) * 1000)::float8 AS at,
      (extract(epoch FROM run_at - created_at))::float8 AS delay FROM pgpubsub.notifications ORDER BY id`;
    expect(rows.map((r) => BigInt(r.id))).toEqual([a.id, b.id]);
    expect(rows[0]!.at).toBe(runAt.getTime());
    expect(rows[1]!.delay).toBeCloseTo(7200, 0);
    await expect(notify(t.db, jobs, { n: 3 }, { runAt, delayMs: 5 })).rejects.toThrow(/runAt or delayMs/);
    await expect(notify(t.db, jobs, { n: 3 }, { delayMs: -1 })).rejects.toThrow(/delayMs must be/);
    await expect(notify(t.db, jobs, { n: 3 }, { runAt: new Date(Number.NaN) })).rejects.toThrow(
      /runAt must be a valid Date/,
    );
    expect((await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`)[0]!.n).toBe(2);
  });

  it('wakes a sleeping listener (no sweep) when a delayed notification becomes due', async () => {
    const handled: { n: number; late: boolean }[] = [];
    await start(handled);
    // Let the listener go to sleep (its idle flag set) before the producer writes.
    await waitFor(
      async () => (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups WHERE idle`)[0]!.n > 0,
      {
        what: 'the listener to go idle',
      },
    );
    const before = hints.length;
    const sent = await t.db.transaction((tx) => notify(tx, jobs, { n: 1 }, { delayMs: 1500 }));
    // The producer's NOTIFY is a hint with the delay, not a wake-up to claim now.
    await waitFor(() => hints.length > before, { what: 'the producer NOTIFY' });
    expect(hints.at(-1)).toMatch(/^at:\d+$/);
    expect(handled).toEqual([]);
    await waitFor(() => handled.length === 1, { timeoutMs: 30_000, what: 'the delayed handler' });
    expect(handled).toEqual([{ n: 1, late: true }]);
    await waitFor(
      async () =>
        (await t.sql`SELECT id FROM pgpubsub.notifications WHERE id = ${sent.id.toString()}`).length === 0,
      { what: 'the handled row to be deleted' },
    );
  });

  it('a later delayed notification sends no NOTIFY; an earlier one does, and wakes the listener in time', async () => {
    const handled: { n: number; late: boolean }[] = [];
    await start(handled);
    await waitFor(
      async () => (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups WHERE idle`)[0]!.n > 0,
      {
        what: 'the listener to go idle',
      },
    );
    const before = hints.length;
    await t.db.transaction((tx) => notify(tx, jobs, { n: 60 }, { delayMs: 600_000 }));
    await waitFor(() => hints.length > before, { what: 'the first hint' });
    expect(hints.at(-1)).toMatch(/^at:\d+$/);
    const afterFirst = hints.length;
    // Later than the pending one: the listener's timer for the first covers it, no NOTIFY.
    await t.db.transaction((tx) => notify(tx, jobs, { n: 61 }, { delayMs: 900_000 }));
    // Earlier: the listener must learn about it.
    await t.db.transaction((tx) => notify(tx, jobs, { n: 2 }, { delayMs: 1500 }));
    await waitFor(() => handled.length === 1, { timeoutMs: 30_000, what: 'the earlier delayed handler' });
    expect(handled).toEqual([{ n: 2, late: true }]);
    // Only the earlier one's NOTIFY arrived (NOTIFYs are delivered in commit order).
    expect(hints.slice(afterFirst)).toHaveLength(1);
    expect(hints.at(-1)).toMatch(/^at:\d+$/);
    const left = async () =>
      JSON.stringify(
        (await t.sql`SELECT payload FROM pgpubsub.notifications ORDER BY run_at`).map((r) => r.payload),
      );
    await waitFor(async () => (await left()) === JSON.stringify([{ n: 60 }, { n: 61 }]), {
      what: 'only the two later rows left',
    });
  });

  it('a listener that starts with delayed work pending wakes for it without a sweep', async () => {
    await t.db.transaction((tx) => notify(tx, jobs, { n: 3 }, { delayMs: 1500 }));
    const handled: { n: number; late: boolean }[] = [];
    await start(handled);
    await waitFor(() => handled.length === 1, { timeoutMs: 30_000, what: 'the delayed handler' });
    expect(handled).toEqual([{ n: 3, late: true }]);
  });
});

describe('bulk notify', () => {
  it('stores many payloads in one call, in order, and returns their ids', async () => {
    const db = drizzle({ client: t.sql });
    const payloads = Array.from({ length: 500 }, (_, n) => ({ n }));
    const sent = await db.transaction((tx) => notify(tx, jobs, payloads, { delayMs: 600_000, priority: 3 }));
    expect(sent.ids).toHaveLength(500);
    expect(sent.results.every((r) => r.outcome === 'inserted' && !r.duplicate)).toBe(true);
    const rows = await t.sql`SELECT id, payload, priority FROM pgpubsub.notifications ORDER BY id`;
    expect(rows.map((r) => BigInt(r.id))).toEqual(sent.ids);
    expect(rows.map((r) => r.payload)).toEqual(payloads);
    expect(new Set(rows.map((r) => r.priority))).toEqual(new Set([3]));
    expect(await notify(t.db, jobs, [])).toEqual({ ids: [], results: [] });
  });

  it('refuses the whole call when one payload is invalid, naming its index', async () => {
    const payloads = [{ n: 1 }, { n: 2 }, { n: 'three' }, { n: 4 }] as { n: number }[];
    await expect(notify(t.db, jobs, payloads)).rejects.toThrow(
      /Payload at index 2: Invalid payload for channel "delayed_jobs"/,
    );
    await expect(
      notify(t.db, jobs, [{ n: 1 }, { n: 2 }], { key: (p) => (p.n === 2 ? 'a\u0001b' : 'k') }),
    ).rejects.toThrow(/Payload at index 1: .*U\+0001/);
    expect((await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`)[0]!.n).toBe(0);
  });

  it('a bulk send is handled by a listener', async () => {
    const handled: { n: number; late: boolean }[] = [];
    await start(handled);
    await notify(
      t.db,
      jobs,
      Array.from({ length: 50 }, (_, n) => ({ n })),
    );
    await waitFor(() => handled.length === 50, { timeoutMs: 30_000, what: '50 handlers' });
    expect(handled.map((h) => h.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, n) => n));
  });
});
