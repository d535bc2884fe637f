/**
 * Deduplication (issue 17): at most one pending notification per channel and key. `skip` keeps the
 * pending one, `replace` overwrites it; a row a listener is handling is never waited for: a replace
 * inserts a successor, so the new payload is neither lost nor blocked. Race-free under concurrent
 * producers (many connections, few keys).
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '../src/admin.ts';
import { channel } from '../src/channel.ts';
import { listFailed, retryFailed } from '../src/dead-letters.ts';
import { type NotifyResult, notify } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();
const jobs = channel('dedup_jobs', v.object({ key: v.string(), n: v.number() }));
const other = channel('dedup_other', v.object({ key: v.string(), n: v.number() }));

const CONNECTIONS = 20;
// 20 × 200 passes too (JOBS_DEDUP_PER_CONNECTION=200); the default keeps the file at a few seconds.
const PER_CONNECTION = Number(process.env.JOBS_DEDUP_PER_CONNECTION ?? 30);
const KEYS = 10;

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.stop({ timeoutMs: 10_000 });
  listener = undefined;
  await t.sql`DELETE FROM pgpubsub.notifications`;
});

/** `CONNECTIONS` producers, each on a connection of its own, each sending `PER_CONNECTION` keyed notifications. */
async function produce(
  onDuplicate: 'skip' | 'replace',
): Promise<{ key: string; n: number; r: NotifyResult }[]> {
  const out: { key: string; n: number; r: NotifyResult }[] = [];
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, c) => {
      const db = drizzle({ client: t.client({ max: 1 }) });
      for (let i = 0; i < PER_CONNECTION; i++) {
        const n = c * PER_CONNECTION + i;
        const key = `k${(c + i) % KEYS}`;
        const r = await db.transaction((tx) => notify(tx, jobs, { key, n }, { key, onDuplicate }));
        out.push({ key, n, r });
      }
    }),
  );
  return out;
}

async function pendingRows(ch = jobs.name) {
  return t.sql`SELECT id, dedup_key, payload FROM pgpubsub.notifications WHERE channel = ${ch} AND status = 'pending' ORDER BY dedup_key`;
}

describe('deduplication', () => {
  it('skip: concurrent producers leave exactly one pending row per key, the first one', async () => {
    const sent = await produce('skip');
    const rows = await pendingRows();
    expect(rows.map((r) => r.dedup_key)).toEqual(Array.from({ length: KEYS }, (_, k) => `k${k}`).sort());
    const inserted = sent.filter((s) => s.r.outcome === 'inserted');
    expect(inserted).toHaveLength(KEYS);
    expect(sent.filter((s) => s.r.outcome === 'skipped')).toHaveLength(CONNECTIONS * PER_CONNECTION - KEYS);
    for (const row of rows) {
      const first = inserted.find((s) => s.key === row.dedup_key)!;
      expect(row.payload).toEqual({ key: first.key, n: first.n });
      // Every skipped send names the row that was kept.
      for (const s of sent.filter((x) => x.key === row.dedup_key)) expect(s.r.id).toBe(BigInt(row.id));
    }
  });

  it('replace: concurrent producers leave one row per key, holding one of its payloads', async () => {
    const sent = await produce('replace');
    const rows = await pendingRows();
    expect(rows).toHaveLength(KEYS);
    expect(sent.filter((s) => s.r.outcome === 'inserted')).toHaveLength(KEYS);
    expect(sent.filter((s) => s.r.outcome === 'replaced' && s.r.duplicate)).toHaveLength(
      CONNECTIONS * PER_CONNECTION - KEYS,
    );
    for (const row of rows) {
      expect(row.payload.key).toBe(row.dedup_key);
      // The last replace of each producer connection happened after every earlier one on it.
      expect(sent.some((s) => s.key === row.dedup_key && s.n === row.payload.n)).toBe(true);
    }
    // Keys are per channel.
    const r = await notify(t.db, other, { key: 'k0', n: 1 }, { key: 'k0' });
    expect(r.outcome).toBe('inserted');
  });

  it('replace while a listener handles the row: the producer is not blocked and the new payload runs after it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled: number[] = [];
    let started = false;
    listener = createListener(t.db, { pollIntervalMs: false }).on(jobs, async ({ payload }) => {
      if (payload.n === 1) {
        started = true;
        await gate;
      }
      handled.push(payload.n);
    });
    await listener.start();
    const first = await notify(t.db, jobs, { key: 'a', n: 1 }, { key: 'a', onDuplicate: 'replace' });
    await waitFor(() => started, { what: 'the first handler to start' });
    // The row is locked by the running handler: skip sees it, replace inserts a successor at once.
    const skipped = await notify(t.db, jobs, { key: 'a', n: 99 }, { key: 'a' });
    expect(skipped).toEqual({ id: first.id, outcome: 'skipped', duplicate: true });
    const second = await notify(t.db, jobs, { key: 'a', n: 2 }, { key: 'a', onDuplicate: 'replace' });
    expect(second.outcome).toBe('inserted');
    expect(second.id).not.toBe(first.id);
    // A second replace while the first still runs overwrites the successor, not the running row.
    const third = await notify(t.db, jobs, { key: 'a', n: 3 }, { key: 'a', onDuplicate: 'replace' });
    // ...unless the listener already took the successor (it is not blocked by the first handler
    // only when concurrency allows; with the default, it may be running now).
    expect(['replaced', 'inserted']).toContain(third.outcome);
    release();
    await waitFor(async () => (await pendingRows()).length === 0, { timeoutMs: 30_000, what: 'all handled' });
    expect(handled).toContain(1);
    expect(handled).toContain(3);
    expect(handled).not.toContain(99);
  });

  it('replace with a listener running: every inserted row is handled exactly once, and the last payload of each key runs', async () => {
    const handled = new Map<string, number[]>();
    let runs = 0;
    listener = createListener(t.db, { pollIntervalMs: false }).on(jobs, async ({ payload }) => {
      runs++;
      const list = handled.get(payload.key) ?? [];
      list.push(payload.n);
      handled.set(payload.key, list);
    });
    await listener.start();
    const sent = await produce('replace');
    // A last replace per key, after every producer finished: it must run.
    const last = [];
    for (let k = 0; k < KEYS; k++) {
      last.push(await notify(t.db, jobs, { key: `k${k}`, n: -1 }, { key: `k${k}`, onDuplicate: 'replace' }));
    }
    await waitFor(async () => (await pendingRows()).length === 0, { timeoutMs: 60_000, what: 'all handled' });
    for (let k = 0; k < KEYS; k++) expect(handled.get(`k${k}`)?.at(-1)).toBe(-1);
    const inserted =
      sent.filter((s) => s.r.outcome === 'inserted').length +
      last.filter((r) => r.outcome === 'inserted').length;
    expect(runs).toBe(inserted);
    expect(inserted).toBeLessThanOrEqual(CONNECTIONS * PER_CONNECTION + KEYS);
  });

  it('bulk: keys per payload, duplicates inside one call included', async () => {
    const sent = await notify(
      t.db,
      jobs,
      [
        { key: 'x', n: 1 },
        { key: 'y', n: 2 },
        { key: 'x', n: 3 },
        { key: '', n: 4 },
      ].slice(0, 3),
      { key: (p) => p.key, onDuplicate: 'replace' },
    );
    expect(sent.results.map((r) => r.outcome)).toEqual(['inserted', 'inserted', 'replaced']);
    expect(sent.ids[2]).toBe(sent.ids[0]);
    const rows = await pendingRows();
    expect(rows.map((r) => [r.dedup_key, r.payload.n])).toEqual([
      ['x', 3],
      ['y', 2],
    ]);
    const skip = await notify(
      t.db,
      jobs,
      [
        { key: 'x', n: 5 },
        { key: 'z', n: 6 },
      ],
      { key: (p) => p.key },
    );
    expect(skip.results.map((r) => r.outcome)).toEqual(['skipped', 'inserted']);
    await expect(notify(t.db, jobs, { key: 'q', n: 1 }, { onDuplicate: 'replace' })).rejects.toThrow(
      /needs a key/,
    );
    await expect(notify(t.db, jobs, { key: 'q', n: 1 }, { key: '' })).rejects.toThrow(/non-empty string/);
  });

  it('a keyed dead letter re-queued while its key is taken comes back as a successor; status counts keys', async () => {
    const first = await notify(t.db, jobs, { key: 'd', n: 1 }, { key: 'd', priority: 4 });
    await t.sql`UPDATE pgpubsub.notifications SET status = 'failed', failed_at = now() WHERE id = ${first.id.toString()}`;
    const [dead] = await listFailed(t.db, { channel: jobs.name });
    expect(dead).toMatchObject({ dedupKey: 'd', priority: 4 });
    // The dead letter no longer holds the key.
    const second = await notify(t.db, jobs, { key: 'd', n: 2 }, { key: 'd' });
    expect(second.outcome).toBe('inserted');
    expect(await retryFailed(t.db, { all: true })).toBe(1);
    const keys = (await pendingRows()).map((r) => r.dedup_key as string);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe('d');
    expect(keys[1]?.startsWith('d\u0001')).toBe(true);
    expect(keys[1]?.slice(2)).toMatch(/^[0-9a-f-]{36}$/);
    // Both count as the key's: a skip sees them, a replace takes the newest.
    expect((await notify(t.db, jobs, { key: 'd', n: 3 }, { key: 'd' })).outcome).toBe('skipped');
    const replaced = await notify(t.db, jobs, { key: 'd', n: 4 }, { key: 'd', onDuplicate: 'replace' });
    expect(replaced).toEqual({ id: second.id, outcome: 'replaced', duplicate: true });
    await notify(t.db, jobs, { key: 'e', n: 5 }, { delayMs: 600_000, priority: 1 });
    const report = await status(t.db);
    expect(report.channels.find((c) => c.channel === jobs.name)).toMatchObject({
      pending: 2,
      scheduled: 1,
      keyed: 2,
      prioritized: 1,
    });
  });
});
