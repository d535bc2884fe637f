import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { status } from '../src/admin.ts';
import { channel, triggerChannel } from '../src/channel.ts';
import { withContext } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { storageMigrationSql } from '../src/storage/notifications.ts';
import { PACK_CHUNK, PACK_THRESHOLD } from '../src/storage/sql-names.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { countNotifications, installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { HEAVY } from './support/heavy.ts';
import { waitFor } from './support/wait-for.ts';

const items = pgTable('items', {
  id: serial().primaryKey(),
  name: text().notNull(),
  qty: integer().notNull(),
});
const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'] });
const orderedItems = pgTable('ordered_items', { id: serial().primaryKey(), qty: integer().notNull() });
const orderedEvents = triggerChannel(orderedItems, { on: ['insert'], ordered: true });
const other = channel('other', v.object({ n: v.number() }));
const odd = pgTable('Odd "T" %s $pgpubsub$', {
  id: serial('I"d').primaryKey(),
  qty: integer('q%ty').notNull(),
});
const oddEvents = triggerChannel(odd, { on: ['insert', 'delete'], name: `we"ird $x$ 'q' %s` });

const t = useTestDatabase([
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty integer NOT NULL)',
  'CREATE TABLE ordered_items (id serial PRIMARY KEY, qty integer NOT NULL)',
  'CREATE TABLE "Odd ""T"" %s $pgpubsub$" ("I""d" serial PRIMARY KEY, "q%ty" integer NOT NULL)',
]);

const running: Listener<any>[] = [];
function listen(...args: Parameters<typeof createListener>) {
  const l = createListener(...args);
  running.push(l);
  return l;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE items, ordered_items, pgpubsub.notifications, pgpubsub.packed RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

const packedRows = () =>
  t.sql<{ op: string; count: number; first: number }[]>`
    SELECT op, count, (images -> 0 ->> 'id')::int AS first FROM pgpubsub.packed ORDER BY id`;

describe('packed notifications (storage version 5)', () => {
  it.runIf(HEAVY)(
    "never fails a bulk write for size: chunks stay under jsonb's 256 MB, and a statement with an image over 16 MB stays per row",
    async () => {
      await installChannels(t.sql, [itemEvents]);
      // 300 rows of 1 MB: 300 MB of images, more than one jsonb value can hold.
      await t.sql`INSERT INTO items (name, qty) SELECT repeat(md5(g::text), 32768), g FROM generate_series(1, 300) g`;
      const chunks = await t.sql<{ count: number }[]>`SELECT count FROM pgpubsub.packed ORDER BY id`;
      expect(chunks.reduce((sum, c) => sum + c.count, 0)).toBe(300);
      expect(Math.max(...chunks.map((c) => c.count))).toBeLessThanOrEqual(64);
      // PACK_THRESHOLD rows of 20 MB each: one notification row each.
      await t.sql`INSERT INTO items (name, qty) SELECT repeat(md5(g::text), 32768 * 20), g FROM generate_series(1, ${PACK_THRESHOLD}) g`;
      expect((await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`)[0]!.n).toBe(PACK_THRESHOLD);
      let handled = 0;
      const l = listen(t.db, { pollIntervalMs: false, batchBytes: 64 * 1024 * 1024 }).on(itemEvents, () => {
        handled++;
      });
      await l.start();
      // Handlers run before their claim's DELETE commits: wait for the deletions, then count the calls.
      await waitFor(async () => (await countNotifications(t.sql, 'items')).pending === 0, {
        timeoutMs: 120_000,
        what: 'every large event handled and deleted',
      });
      expect(handled).toBe(300 + PACK_THRESHOLD);
    },
    180_000,
  );

  it('a busy listener expands a packed statement while other events keep it busy, not only when it runs dry', async () => {
    await installChannels(t.sql, [itemEvents]);
    // 30,000 single-row statements (one notification row each), committed before the listener starts.
    await t.sql`DO $$ BEGIN FOR i IN 1..30000 LOOP INSERT INTO items (name, qty) VALUES ('row', i); END LOOP; END $$`;
    let handled = 0;
    const l = listen(t.db, { pollIntervalMs: false }).on(itemEvents, () => {
      handled++;
    });
    await l.start();
    await waitFor(() => handled >= 500, { what: 'the listener to be busy with the backlog' });
    // One packed statement while most of the backlog is ahead (no NOTIFY: the listener is busy).
    await t.sql`INSERT INTO items (name, qty) SELECT 'bulk', g FROM generate_series(1, 200) g`;
    // Expanded within the gate's interval (expand-gate.ts), long before the backlog runs dry (its
    // events then sort after the backlog: they keep their statement's time as run_at).
    await waitFor(async () => (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.packed`)[0]!.n === 0, {
      what: 'the packed row to be expanded',
    });
    expect(handled).toBeLessThan(30_000);
    // Handlers run before their claim's DELETE commits: wait for the deletions, then count the calls.
    await waitFor(async () => (await countNotifications(t.sql, 'items')).pending === 0, {
      timeoutMs: 60_000,
      what: 'every event handled and deleted',
    });
    expect(handled).toBe(30_200);
  });

  it('packs a multi-row statement in chunks and keeps small statements and ordered channels per row', async () => {
    await installChannels(t.sql, [itemEvents, orderedEvents]);
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 2500) g`;
    expect(await packedRows()).toEqual([
      { op: 'insert', count: PACK_CHUNK, first: 1 },
      { op: 'insert', count: PACK_CHUNK, first: PACK_CHUNK + 1 },
      { op: 'insert', count: 2500 - 2 * PACK_CHUNK, first: 2 * PACK_CHUNK + 1 },
    ]);
    await t.sql`INSERT INTO items (name, qty) SELECT 's' || g, g FROM generate_series(1, ${PACK_THRESHOLD - 1}) g`;
    await t.sql`INSERT INTO ordered_items (qty) SELECT g FROM generate_series(1, 50) g`;
    expect(
      await t.sql`SELECT channel, count(*)::int AS n FROM pgpubsub.notifications GROUP BY channel ORDER BY channel`,
    ).toEqual([
      { channel: 'items', n: PACK_THRESHOLD - 1 },
      { channel: 'ordered_items', n: 50 },
    ]);
    expect((await packedRows()).length).toBe(3);
    // status() and the test helper count packed events as pending.
    const report = await status(t.db);
    expect(report.channels.find((c) => c.channel === 'items')?.pending).toBe(2500 + PACK_THRESHOLD - 1);
    expect(report.channels.find((c) => c.channel === 'items')?.oldestPendingAgeMs).toBeGreaterThanOrEqual(0);
    expect((await countNotifications(t.sql, 'items')).pending).toBe(2500 + PACK_THRESHOLD - 1);
  });

  it('expands a packed row atomically into notifications in statement order, with context and images', async () => {
    await installChannels(t.sql, [itemEvents]);
    await t.db.transaction(async (tx) => {
      await withContext(tx, { tenant: 't1' });
      await tx
        .insert(items)
        .values(Array.from({ length: 1500 }, (_, i) => ({ name: `n${i + 1}`, qty: i + 1 })));
    });
    await t.sql`DELETE FROM items WHERE id <= 20`;
    const [first] = await t.sql`SELECT min(created_at) AS created FROM pgpubsub.packed WHERE op = 'insert'`;
    const created = first!.created as Date;
    expect(await t.sql`SELECT pgpubsub.expand_packed('items', '{"tenant":"other"}')`).toEqual([
      { expand_packed: 0 },
    ]);
    expect(await t.sql`SELECT pgpubsub.expand_packed('items', '{"tenant":"t1"}')`).toEqual([
      { expand_packed: 1000 },
    ]);
    expect(await t.sql`SELECT pgpubsub.expand_packed('items')`).toEqual([{ expand_packed: 500 }]);
    expect(await t.sql`SELECT pgpubsub.expand_packed('items')`).toEqual([{ expand_packed: 20 }]);
    expect(await t.sql`SELECT pgpubsub.expand_packed('items')`).toEqual([{ expand_packed: 0 }]);
    const rows =
      await t.sql`SELECT op, old, new, context, run_at, created_at, status, attempts FROM pgpubsub.notifications ORDER BY id`;
    expect(rows).toHaveLength(1520);
    rows.slice(0, 1500).forEach((r, i) => {
      expect(r).toMatchObject({ op: 'insert', old: null, new: { id: i + 1, name: `n${i + 1}`, qty: i + 1 } });
      expect(r).toMatchObject({ context: { tenant: 't1' }, status: 'pending', attempts: 0 });
      expect(r.run_at).toEqual(created);
      expect(r.created_at).toEqual(created);
    });
    rows.slice(1500).forEach((r, i) => {
      expect(r).toMatchObject({
        op: 'delete',
        new: null,
        old: { id: i + 1, name: `n${i + 1}` },
        context: {},
      });
    });
    expect(await t.sql`SELECT count(*)::int AS n FROM pgpubsub.packed`).toEqual([{ n: 0 }]);
  });

  it('loses nothing when the expanding session is terminated, and two expanders never share a row', async () => {
    await installChannels(t.sql, [itemEvents]);
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 3000) g`;
    const a = t.client({ max: 1 });
    const b = t.client({ max: 1 });
    const [me] = await a`SELECT pg_backend_pid() AS pid`;
    const pid = me!.pid as number;
    await a`BEGIN`;
    expect(await a`SELECT pgpubsub.expand_packed('items')`).toEqual([{ expand_packed: 1000 }]);
    // A second expander skips the channel while the first one's transaction runs.
    expect(await b`SELECT pgpubsub.expand_packed('items')`).toEqual([{ expand_packed: 0 }]);
    await t.sql`SELECT pg_terminate_backend(${pid})`;
    await waitFor(async () => (await t.sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid}`).length === 0, {
      what: 'the terminated session to end',
    });
    expect(await t.sql`SELECT count(*)::int AS n, sum(count)::int AS events FROM pgpubsub.packed`).toEqual([
      { n: 3, events: 3000 },
    ]);
    expect(await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`).toEqual([{ n: 0 }]);
    // Nothing was doubled either: every event is handled exactly once afterwards.
    const seen = new Map<number, number>();
    const l = listen(t.db, { pollIntervalMs: false, batchSize: 500 }).on(itemEvents, async (e) => {
      if (e.op === 'insert') seen.set(e.new.id, (seen.get(e.new.id) ?? 0) + 1);
    });
    expect(await l.drain()).toMatchObject({ processed: 3000, dead: 0 });
    expect(seen.size).toBe(3000);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('is left alone by a listener that does not handle the channel', async () => {
    await installChannels(t.sql, [itemEvents]);
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 100) g`;
    const l = listen(t.db, { pollIntervalMs: false }).on(other, async () => {});
    await l.drain();
    expect(await t.sql`SELECT sum(count)::int AS events FROM pgpubsub.packed`).toEqual([{ events: 100 }]);
  });

  it('two concurrent listeners handle a 10,000-row INSERT, UPDATE and DELETE exactly once, in statement order per claim', async () => {
    await installChannels(t.sql, [itemEvents]);
    const seen: { listener: number; op: string; id: number; ok: boolean }[] = [];
    const unordered: string[] = [];
    const make = (n: number) =>
      listen(t.drizzle(4), { pollIntervalMs: 200, batchSize: 200 }).onBatch(
        itemEvents,
        async (events) => {
          let last: Record<string, number> = {};
          for (const e of events) {
            const row = e.op === 'delete' ? e.old : e.new;
            const ok =
              e.op === 'insert'
                ? e.old === null && e.new.name === `n${e.new.id}` && e.new.qty === e.new.id
                : e.op === 'update'
                  ? e.old.qty === e.old.id && e.new.qty === e.new.id * 2 && e.old.id === e.new.id
                  : e.new === null && e.old.qty === e.old.id * 2;
            seen.push({ listener: n, op: e.op, id: row.id, ok });
            // Within one claim, the events of a statement come in statement order (ids ascending).
            if (e.op !== 'update' && (last[e.op] ?? 0) >= row.id) unordered.push(`${n}:${e.op}:${row.id}`);
            last = { ...last, [e.op]: row.id };
          }
        },
        { size: 200, maxWaitMs: 0 },
      );
    const one = make(1);
    const two = make(2);
    await Promise.all([one.start(), two.start()]);
    const N = 10_000;
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, ${N}) g`;
    // While the backlog lasts, status counts every event not yet handled.
    const report = await status(t.db);
    const pending = report.channels.find((c) => c.channel === 'items')?.pending ?? 0;
    expect(pending).toBeGreaterThan(0);
    expect(pending + seen.length).toBeGreaterThanOrEqual(N);
    await waitFor(() => seen.length >= N, { what: 'the inserts', timeoutMs: 60_000 });
    await t.sql`UPDATE items SET qty = qty * 2`;
    await waitFor(() => seen.length >= 2 * N, { what: 'the updates', timeoutMs: 60_000 });
    await t.sql`DELETE FROM items`;
    await waitFor(async () => seen.length >= 3 * N && (await countNotifications(t.sql)).pending === 0, {
      what: 'the deletes',
      timeoutMs: 60_000,
    });
    expect(seen).toHaveLength(3 * N);
    expect(seen.every((s) => s.ok)).toBe(true);
    for (const op of ['insert', 'update', 'delete']) {
      const ids = new Set(seen.filter((s) => s.op === op).map((s) => s.id));
      expect(ids.size).toBe(N);
    }
    expect(unordered).toEqual([]);
    // Both listeners took part.
    expect(new Set(seen.map((s) => s.listener)).size).toBe(2);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('packs and expands statements of a channel and table with hostile names, for lease handlers too', async () => {
    await installChannels(t.sql, [oddEvents]);
    await t.sql.unsafe(
      `INSERT INTO "Odd ""T"" %s $pgpubsub$" ("q%ty") SELECT g FROM generate_series(1, 40) g`,
    );
    await t.sql.unsafe(`DELETE FROM "Odd ""T"" %s $pgpubsub$" WHERE "I""d" <= 10`);
    expect(await t.sql`SELECT channel, op, count FROM pgpubsub.packed ORDER BY id`).toEqual([
      { channel: oddEvents.name, op: 'insert', count: 40 },
      { channel: oddEvents.name, op: 'delete', count: 10 },
    ]);
    const seen: string[] = [];
    const l = listen(t.db, { pollIntervalMs: false }).on(
      oddEvents,
      async (e) => {
        seen.push(e.op === 'insert' ? `+${e.new.id}:${e.new.qty}` : `-${e.old?.id}`);
      },
      { lease: '1m' },
    );
    await l.drain();
    expect(seen.toSorted()).toEqual(
      [
        ...Array.from({ length: 40 }, (_, i) => `+${i + 1}:${i + 1}`),
        ...Array.from({ length: 10 }, (_, i) => `-${i + 1}`),
      ].toSorted(),
    );
    expect(await countNotifications(t.sql, oddEvents.name)).toEqual({ pending: 0, failed: 0 });
    await t.sql.unsafe(`TRUNCATE "Odd ""T"" %s $pgpubsub$"`);
  });

  it('an idle listener whose expansion is blocked sleeps, and handles everything at the next wake-up', async () => {
    await installChannels(t.sql, [itemEvents]);
    const holder = t.client({ max: 1 });
    let handled = 0;
    const l = listen(t.db, { pollIntervalMs: false }).on(itemEvents, async () => void handled++);
    await l.start();
    // Another listener's expansion of the channel in progress: the try-lock expand_packed takes.
    await holder`BEGIN`;
    await holder`SELECT pg_advisory_xact_lock(hashtext('drizzle-pgpubsub expand "pgpubsub"'), hashtext('items'))`;
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 30) g`;
    // The listener woke, could not expand, and went back to sleep (its flag set again).
    await waitFor(
      async () =>
        (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups WHERE channel = 'items' AND idle`)[0]!
          .n === 1,
      { what: 'the listener to sleep again' },
    );
    expect(handled).toBe(0);
    await holder`COMMIT`;
    await t.sql`INSERT INTO items (name, qty) VALUES ('late', 1)`;
    await waitFor(async () => handled === 31 && (await countNotifications(t.sql)).pending === 0, {
      what: 'all 31 events after the next wake-up',
    });
    expect(handled).toBe(31);
  });

  it('wakes an idle listener for a packed statement', async () => {
    await installChannels(t.sql, [itemEvents]);
    let handled = 0;
    const l = listen(t.db, { pollIntervalMs: false }).on(itemEvents, async () => void handled++);
    await l.start();
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 50) g`;
    await waitFor(() => handled === 50, { what: '50 events without a sweep' });
  });

  it('upgrades storage version 4 with pending rows kept', async () => {
    const schema = 'pgpubsub_v4';
    // Storage version 4: no packed table and function, and two CHECKs (op, status) instead of one.
    const v5 = storageMigrationSql(schema);
    const v4 = v5
      .filter((s) => !s.includes('"packed"') && !s.includes('"expand_packed"'))
      .filter((s) => !s.includes("conname = 'notifications_check'"))
      .map((s) =>
        s
          .replace(
            `"op" text,`,
            `"op" text CONSTRAINT "notifications_op_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate')),`,
          )
          .replace(
            `"status" text NOT NULL DEFAULT 'pending',`,
            `"status" text NOT NULL DEFAULT 'pending' CHECK ("status" IN ('pending', 'failed')),`,
          )
          .replace(/,\n {2}CONSTRAINT "notifications_check" CHECK \([^\n]*\)\n/, '\n'),
      )
      .filter((s) => !s.includes('DROP CONSTRAINT IF EXISTS "notifications_status_check"'));
    expect(v5.length - v4.length).toBe(7);
    for (const s of v4) await t.sql.unsafe(s);
    const checks = () =>
      t.sql`SELECT conname FROM pg_constraint WHERE conrelid = ${`"${schema}"."notifications"`}::regclass AND contype = 'c' ORDER BY 1`;
    expect((await checks()).map((r) => r.conname)).toEqual([
      'notifications_op_check',
      'notifications_status_check',
    ]);
    const spec = resolveTriggerSpec(itemEvents);
    // A version-4 trigger writes one row per event (no packed table yet): simulated with rows.
    await t.sql.unsafe(
      `INSERT INTO "${schema}".notifications (channel, op, new) SELECT 'items', 'insert', jsonb_build_object('id', g, 'name', 'n' || g, 'qty', g) FROM generate_series(1, 30) g`,
    );
    for (const s of v5) await t.sql.unsafe(s);
    expect((await checks()).map((r) => r.conname)).toEqual(['notifications_check']);
    for (const s of createTriggerSql(spec, schema)) await t.sql.unsafe(s);
    await t.sql`INSERT INTO items (name, qty) SELECT 'n' || g, g FROM generate_series(1, 20) g`;
    expect(await t.sql.unsafe(`SELECT count(*)::int AS n FROM "${schema}".notifications`)).toEqual([
      { n: 30 },
    ]);
    expect(await t.sql.unsafe(`SELECT sum(count)::int AS n FROM "${schema}".packed`)).toEqual([{ n: 20 }]);
    const ids: number[] = [];
    const l = listen(t.db, { pollIntervalMs: false, schema }).on(itemEvents, async (e) => {
      if (e.op === 'insert') ids.push(e.new.id);
    });
    expect(await l.drain()).toMatchObject({ processed: 50, dead: 0 });
    expect(ids.toSorted((a, b) => a - b)).toEqual(
      [
        ...Array.from({ length: 20 }, (_, i) => i + 1),
        ...Array.from({ length: 30 }, (_, i) => i + 1),
      ].toSorted((a, b) => a - b),
    );
    await t.sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
    await installChannels(t.sql, [itemEvents]);
  });

  it('tells a listener of trigger channels on storage version 4 to migrate', async () => {
    const schema = 'pgpubsub_old';
    for (const s of storageMigrationSql(schema).filter(
      (x) => !x.includes('"packed"') && !x.includes('"expand_packed"'),
    ))
      await t.sql.unsafe(s);
    try {
      const l = listen(t.db, { schema }).on(itemEvents, async () => {});
      await expect(l.drain()).rejects.toThrow(/storage version 5/);
      // Listeners of custom channels only do not need it.
      const c = listen(t.db, { schema }).on(other, async () => {});
      await expect(c.drain()).resolves.toMatchObject({ processed: 0 });
    } finally {
      await t.sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`);
    }
  });
});

// Last in the file: it replaces this database's storage with the example's own migrations.
describe('upgrade of a real storage version 4', () => {
  const authors = pgTable('authors', { id: serial().primaryKey(), name: text().notNull() });
  const authorEvents = triggerChannel(authors, { on: ['insert'] });
  const dir = join(import.meta.dirname, '../examples/authors-posts/drizzle');
  const apply = async (file: string) => {
    for (const chunk of readFileSync(join(dir, file), 'utf8').split('--> statement-breakpoint'))
      if (chunk.trim()) await t.sql.unsafe(chunk);
  };

  it('keeps the pending rows of the authors-posts migrations 0001-0003 through 0004 (version 5)', async () => {
    await t.sql.unsafe('DROP SCHEMA pgpubsub CASCADE');
    for (const f of ['0000_authors_posts.sql', '0001_pgpubsub.sql', '0002_pgpubsub.sql', '0003_pgpubsub.sql'])
      await apply(f);
    expect(readFileSync(join(dir, '0002_pgpubsub.sql'), 'utf8')).toContain('storage {"version":4');
    expect(readFileSync(join(dir, '0004_pgpubsub.sql'), 'utf8')).toContain('storage {"version":5');
    // Storage version 4: one row per event, two CHECKs, no packed table.
    await t.sql`INSERT INTO authors (name) SELECT 'v4 ' || g FROM generate_series(1, 20) g`;
    expect(
      await t.sql`SELECT count(*)::int AS n, to_regclass('pgpubsub.packed') AS packed FROM pgpubsub.notifications`,
    ).toEqual([{ n: 20, packed: null }]);
    await apply('0004_pgpubsub.sql');
    const checks =
      await t.sql`SELECT conname FROM pg_constraint WHERE conrelid = 'pgpubsub.notifications'::regclass AND contype = 'c'`;
    expect(checks.map((r) => r.conname)).toEqual(['notifications_check']);
    await t.sql`INSERT INTO authors (name) SELECT 'v5 ' || g FROM generate_series(1, 20) g`;
    expect(
      await t.sql`SELECT (SELECT count(*)::int FROM pgpubsub.notifications) AS rows, (SELECT sum(count)::int FROM pgpubsub.packed) AS packed`,
    ).toEqual([{ rows: 20, packed: 20 }]);
    const names: string[] = [];
    const l = listen(t.db, { pollIntervalMs: false }).on(authorEvents, async (e) => {
      if (e.op === 'insert') names.push(e.new.name);
    });
    expect(await l.drain()).toMatchObject({ processed: 40, dead: 0 });
    expect(names.toSorted()).toEqual(
      [
        ...Array.from({ length: 20 }, (_, i) => `v4 ${i + 1}`),
        ...Array.from({ length: 20 }, (_, i) => `v5 ${i + 1}`),
      ].toSorted(),
    );
  });
});
