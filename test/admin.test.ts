import { integer, pgTable, serial } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { healthProblems, status } from '../src/admin.ts';
import { channel } from '../src/channel.ts';
import { countFailed, listFailed, purgeFailed, retryFailed } from '../src/dead-letters.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { notify } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase(['CREATE TABLE admin_effects (id serial PRIMARY KEY, n integer NOT NULL)']);
const effects = pgTable('admin_effects', { id: serial().primaryKey(), n: integer().notNull() });
const work = channel('admin_work', v.object({ n: v.number(), fail: v.optional(v.boolean()) }));
const other = channel('admin_other', v.object({ n: v.number() }));

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE admin_effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

/** Inserts failed notifications directly: `failedAgo` is how long ago they failed. */
async function deadLetters(channelName: string, rows: { n: number; failedAgo: string }[]) {
  const out: string[] = [];
  for (const r of rows) {
    const [row] = await t.sql`
      INSERT INTO pgpubsub.notifications (channel, payload, status, attempts, last_error, failed_at)
      VALUES (${channelName}, ${JSON.stringify({ n: r.n })}::jsonb, 'failed', 10, ${`Error: n=${r.n}`}, now() - ${r.failedAgo}::interval)
      RETURNING id::text`;
    out.push(row!.id);
  }
  return out;
}

describe('status', () => {
  it('counts pending, scheduled and failed per channel, the oldest due age, and connected listeners', async () => {
    expect(await status(t.db)).toMatchObject({
      channels: [],
      totals: { pending: 0, scheduled: 0, failed: 0 },
    });
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, payload, run_at) VALUES
        ('admin_work', '{"n":1}', now() - interval '90 seconds'),
        ('admin_work', '{"n":2}', now()),
        ('admin_work', '{"n":3}', now() + interval '1 hour')`;
    await deadLetters('admin_other', [{ n: 4, failedAgo: '1 minute' }]);
    await t.sql`INSERT INTO pgpubsub.wakeups (channel, key, idle) VALUES ('admin_idle', 1, true)`;

    const report = await status(t.db);
    expect(report.channels.map((c) => c.channel)).toEqual(['admin_idle', 'admin_other', 'admin_work']);
    const [idle, otherCh, workCh] = report.channels;
    expect(idle).toEqual({
      channel: 'admin_idle',
      pending: 0,
      scheduled: 0,
      failed: 0,
      prioritized: 0,
      keyed: 0,
      oldestPendingAgeMs: null,
      nextRunAt: null,
    });
    expect(otherCh).toMatchObject({ pending: 0, scheduled: 0, failed: 1, oldestPendingAgeMs: null });
    expect(workCh).toMatchObject({ pending: 2, scheduled: 1, failed: 0 });
    expect(workCh!.oldestPendingAgeMs).toBeGreaterThanOrEqual(89_000);
    expect(workCh!.oldestPendingAgeMs).toBeLessThan(120_000);
    expect(workCh!.nextRunAt!.getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
    expect(report.totals).toEqual({ pending: 2, scheduled: 1, failed: 1 });
    expect(report.listeners).toEqual([]);

    const l = createListener(t.db, { pollIntervalMs: false }).on(other, () => {});
    running.push(l);
    await l.start();
    const withListener = await status(t.db);
    expect(withListener.listeners).toHaveLength(1);
    expect(withListener.listeners[0]).toMatchObject({
      pid: expect.any(Number),
      connectedAt: expect.any(Date),
    });
  });

  it('healthProblems reports dead letters and due work older than maxAgeMs', async () => {
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload, run_at) VALUES ('admin_work', '{"n":1}', now() - interval '10 minutes')`;
    await deadLetters('admin_other', [{ n: 2, failedAgo: '1 hour' }]);
    const report = await status(t.db);
    const problems = healthProblems(report);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^1 failed notification \(admin_other: 1\)/);
    expect(problems[1]).toMatch(
      /^admin_work: oldest pending notification has waited 60\ds \(limit 300s\) with 1 pending; no listener is connected$/,
    );
    expect(healthProblems(report, { maxAgeMs: 3600_000, maxFailed: 1 })).toEqual([]);
  });

  it('says how to create the storage when the table is missing', async () => {
    const error = await status(t.db, { schema: 'nowhere' }).catch((e) => e);
    expect(isPgPubSubError(error, 'TABLE_MISSING')).toBe(true);
    expect(error.message).toMatch(/Run `npx drizzle-pgpubsub generate` and then `npx drizzle-kit migrate`/);
    const listError = await listFailed(t.db, { schema: 'nowhere' }).catch((e) => e);
    expect(isPgPubSubError(listError, 'TABLE_MISSING')).toBe(true);
  });
});

describe('listFailed / retryFailed / purgeFailed', () => {
  it('lists dead letters newest first, filtered and limited', async () => {
    await deadLetters('admin_work', [
      { n: 1, failedAgo: '3 hours' },
      { n: 2, failedAgo: '1 hour' },
    ]);
    await deadLetters('admin_other', [{ n: 3, failedAgo: '2 hours' }]);
    await notify(t.db, work, { n: 4 }); // pending: never listed
    const all = await listFailed(t.db);
    expect(all.map((r) => [r.channel, (r.payload as { n: number }).n])).toEqual([
      ['admin_work', 2],
      ['admin_other', 3],
      ['admin_work', 1],
    ]);
    expect(all[0]).toMatchObject({
      status: 'failed',
      attempts: 10,
      lastError: 'Error: n=2',
      failedAt: expect.any(Date),
    });
    expect(typeof all[0]!.id).toBe('bigint');
    expect((await listFailed(t.db, { channel: 'admin_work', limit: 1 })).map((r) => r.lastError)).toEqual([
      'Error: n=2',
    ]);
    expect(await countFailed(t.db)).toBe(3);
    expect(await countFailed(t.db, { channel: 'admin_other' })).toBe(1);
    await expect(listFailed(t.db, { limit: 0 })).rejects.toThrow(/`limit` must be a positive integer/);
  });

  it('retryFailed re-queues by ids, channel or all, and wakes a sleeping listener', async () => {
    const seen: number[] = [];
    const l = createListener(t.db, { pollIntervalMs: false })
      .on(work, async ({ payload }, tx) => {
        seen.push(payload.n);
        await tx.insert(effects).values({ n: payload.n });
      })
      .on(other, async ({ payload }, tx) => {
        seen.push(payload.n);
        await tx.insert(effects).values({ n: payload.n });
      });
    running.push(l);
    // `processed` is reported after the claim transaction commits; the handler runs before it.
    let committed = 0;
    l.events.on('processed', () => void committed++);
    await l.start();
    const [a, b] = await deadLetters('admin_work', [
      { n: 1, failedAgo: '1 hour' },
      { n: 2, failedAgo: '1 hour' },
    ]);
    await deadLetters('admin_other', [{ n: 3, failedAgo: '1 hour' }]);
    await deadLetters('admin_work', [{ n: 4, failedAgo: '1 hour' }]);

    // No safety sweep: only the NOTIFY sent by retryFailed can wake the listener.
    expect(await retryFailed(t.db, { ids: [a!, BigInt(b!), '999999'] })).toBe(2);
    await waitFor(() => committed === 2, { what: 'two retried notifications handled' });
    expect(seen.sort()).toEqual([1, 2]);
    expect(await retryFailed(t.db, { channel: 'admin_other' })).toBe(1);
    await waitFor(() => committed === 3);
    expect(await retryFailed(t.db, { all: true })).toBe(1);
    await waitFor(() => committed === 4);
    expect(await retryFailed(t.db, { all: true })).toBe(0);
    expect(await retryFailed(t.db, { ids: [] })).toBe(0);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('retryFailed resets attempts and makes the notification due now', async () => {
    const [id] = await deadLetters('admin_work', [{ n: 1, failedAgo: '1 day' }]);
    await t.sql`UPDATE pgpubsub.notifications SET run_at = now() + interval '1 day' WHERE id = ${id!}`;
    expect(await retryFailed(t.db, { ids: [id!] })).toBe(1);
    const [row] = await t.sql`
      SELECT status, attempts, failed_at, last_error, run_at <= now() AS due FROM pgpubsub.notifications WHERE id = ${id!}`;
    expect(row).toEqual({
      status: 'pending',
      attempts: 0,
      failed_at: null,
      last_error: 'Error: n=1',
      due: true,
    });
  });

  it('retryFailed rejects a selector that is not exactly one of ids, channel, all', async () => {
    for (const bad of [{}, { all: true, channel: 'x' }, { all: false }, { ids: ['1x'] }, { channel: '' }]) {
      const error = await retryFailed(t.db, bad as never).catch((e) => e);
      expect(isPgPubSubError(error, 'INVALID_OPTIONS')).toBe(true);
    }
  });

  it('purgeFailed deletes dead letters older than olderThan, optionally per channel, never pending work', async () => {
    await deadLetters('admin_work', [
      { n: 1, failedAgo: '8 days' },
      { n: 2, failedAgo: '1 day' },
    ]);
    await deadLetters('admin_other', [{ n: 3, failedAgo: '30 days' }]);
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload, created_at) VALUES ('admin_work', '{"n":9}', now() - interval '90 days')`;
    const week = 7 * 24 * 3600_000;
    expect(await purgeFailed(t.db, { olderThan: week, channel: 'admin_work' })).toBe(1);
    expect(await purgeFailed(t.db, { olderThan: week })).toBe(1);
    expect(await countNotifications(t.sql)).toEqual({ pending: 1, failed: 1 });
    expect(await purgeFailed(t.db, { olderThan: 0 })).toBe(1);
    expect(await countNotifications(t.sql)).toEqual({ pending: 1, failed: 0 });
    await expect(purgeFailed(t.db, { olderThan: -1 })).rejects.toThrow(
      /`olderThan` must be a number of milliseconds/,
    );
  });
});
