import { sql as dsql } from 'drizzle-orm';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const jobs = channel('jobs', v.object({ n: v.number() }));
const other = channel('other', v.object({ n: v.number() }));

const t = useTestDatabase();

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 2000 })));
  await t.sql`TRUNCATE pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

async function enqueue(n: number, name = 'jobs'): Promise<void> {
  await t.sql`INSERT INTO pgpubsub.notifications (channel, payload)
    SELECT ${name}, jsonb_build_object('n', g) FROM generate_series(1, ${n}::int) g`;
}

/** Counts handlers running at once; `hold` keeps them running until `release()`. */
function tracker() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const t = {
    active: 0,
    max: 0,
    done: 0,
    async hold() {
      t.active++;
      t.max = Math.max(t.max, t.active);
      try {
        await opened;
      } finally {
        t.active--;
        t.done++;
      }
    },
    release: open,
  };
  return t;
}

/** The most starts that fall in any window [start, start + ms) of the sorted start times. */
function busiestWindow(starts: number[], ms: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (j < starts.length && starts[j]! < starts[i]! + ms) j++;
    most = Math.max(most, j - i);
  }
  return most;
}

describe('per-channel concurrency', () => {
  it('runs at most `concurrency` transactional handlers of the channel at once', async () => {
    await enqueue(10);
    await enqueue(3, 'other');
    const limited = tracker();
    const free = tracker();
    const l = createListener(t.db, { concurrency: 5, batchSize: 1, pollIntervalMs: false })
      .on(jobs, () => limited.hold(), { concurrency: 2 })
      .on(other, () => free.hold());
    running.push(l);
    await l.start();
    // The limit is reached (so the test can see a third), and the other channel is not held back by it.
    await waitFor(() => limited.active === 2 && free.active === 3, { what: '2 + 3 handlers running' });
    for (let i = 0; i < 5; i++) {
      await t.sql`SELECT 1`;
      expect(limited.active).toBe(2);
    }
    limited.release();
    free.release();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'all handled' });
    expect(limited).toMatchObject({ max: 2, done: 10 });
  });

  it('does not shrink transactional batches to the channel concurrency', async () => {
    await enqueue(20);
    const xids = new Set<string>();
    const l = createListener(t.db, { batchSize: 10, pollIntervalMs: false }).on(
      jobs,
      async (_event, tx) => {
        // postgres.js returns the rows, node-postgres a result with `rows`.
        const result: any = await tx.execute(dsql`SELECT txid_current()::text AS xid`);
        const [row] = (Array.isArray(result) ? result : result.rows) as { xid: string }[];
        xids.add(row!.xid);
      },
      { concurrency: 1 },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'all handled' });
    expect(xids.size).toBeLessThanOrEqual(4);
  });

  it('runs at most `concurrency` lease handlers of the channel at once', async () => {
    await enqueue(8);
    const held = tracker();
    const l = createListener(t.db, { concurrency: 2, pollIntervalMs: false }).on(jobs, () => held.hold(), {
      lease: '1m',
      concurrency: 3,
    });
    running.push(l);
    await l.start();
    await waitFor(() => held.active === 3, { what: '3 lease handlers running' });
    for (let i = 0; i < 5; i++) {
      await t.sql`SELECT 1`;
      expect(held.active).toBe(3);
    }
    // Exactly as many leased as run: the rest stay claimable by other listeners.
    const [leased] = await t.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE attempts = 1`;
    expect(leased!.n).toBe(3);
    held.release();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'all handled' });
    expect(held).toMatchObject({ max: 3, done: 8 });
  });
});

describe('per-channel rate', () => {
  it('starts at most `limit` handlers in any window of `perMs`, across concurrent claims', async () => {
    const limit = 10;
    const perMs = 400;
    const total = 45;
    await enqueue(total);
    const starts: number[] = [];
    const l = createListener(t.db, { concurrency: 4, batchSize: 3, pollIntervalMs: false }).on(
      jobs,
      () => {
        starts.push(performance.now());
      },
      { rate: { limit, perMs } },
    );
    running.push(l);
    await l.start();
    // The deadline doubles as the floor on throughput: 45 at 10 per 400 ms need ~1.6 s.
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, {
      what: 'all handled',
      timeoutMs: 30_000,
    });
    expect(starts).toHaveLength(total);
    starts.sort((a, b) => a - b);
    // A small slack for timer and clock granularity: the limiter itself is exact.
    expect(busiestWindow(starts, perMs - 5)).toBeLessThanOrEqual(limit + 1);
    // It did limit: four full windows must have passed between the first start and the last.
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(4 * perMs - 20);
  });

  it('limits lease handlers too, and takes the string form', async () => {
    await enqueue(12);
    const starts: number[] = [];
    const l = createListener(t.db, { pollIntervalMs: false }).on(
      jobs,
      () => {
        starts.push(performance.now());
      },
      { lease: '1m', rate: '5/s' },
    );
    running.push(l);
    await l.start();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, {
      what: 'all handled',
      timeoutMs: 30_000,
    });
    starts.sort((a, b) => a - b);
    expect(busiestWindow(starts, 995)).toBeLessThanOrEqual(6);
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(2 * 1000 - 20);
  });

  it('refuses bad limits with a clear message', () => {
    const l = createListener(t.db);
    // @ts-expect-error not a rate string
    expect(() => l.on(jobs, () => {}, { rate: '100/x' })).toThrow(/`rate` must be/);
    expect(() => l.on(jobs, () => {}, { rate: { limit: 0, perMs: 1000 } })).toThrow(/`rate` must be/);
    expect(() => l.on(jobs, () => {}, { concurrency: 0 })).toThrow(
      /`concurrency` must be a positive integer/,
    );
    // @ts-expect-error not a duration
    expect(() => l.on(jobs, () => {}, { lease: 'soon' })).toThrow(/`lease` must be/);
    const bc = channel('bc', v.object({}), { broadcast: true });
    // @ts-expect-error a broadcast handler takes no lease
    expect(() => l.on(bc, () => {}, { lease: '1m' })).toThrow(/durable channels/);
  });
});
