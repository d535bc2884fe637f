/**
 * Hostile input: SQL injection through every name and value the library puts into SQL, oversize
 * broadcasts, and malformed rows written straight into pgpubsub.notifications. Each one either gets a
 * clear error or is stored and delivered verbatim; none executes SQL, and the listener keeps going.
 */
import { integer, pgSchema, pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { channel, triggerChannel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { notify, withContext } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { createTriggerSql, dropTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { countNotifications, installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

/** Strings an attacker would try: statement breaks, comments, quote games, dollar quotes, casts. */
const INJECTIONS = [
  "'); DROP TABLE canary; --",
  '"; DROP TABLE canary; --',
  "x' OR '1'='1",
  '$$; DROP TABLE canary; $$',
  '$x$; DROP TABLE canary; $x$',
  "\\'; DROP TABLE canary; --",
  "'||(SELECT pg_sleep(0))||'",
  '); CREATE TABLE pwned (); --',
  "E'\\x27; DROP TABLE canary; --",
  '/* */ DROP TABLE canary',
];

const t = useTestDatabase([
  'CREATE TABLE canary (id int PRIMARY KEY)',
  'INSERT INTO canary VALUES (1)',
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty integer NOT NULL)',
]);

const items = pgTable('items', {
  id: serial().primaryKey(),
  name: text().notNull(),
  qty: integer().notNull(),
});

/** Every object name in non-system schemas: tables, types, functions, triggers. */
async function objects(): Promise<string[]> {
  const rows = await t.sql`
    SELECT 'rel ' || n.nspname || '.' || c.relname AS o FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    UNION ALL SELECT 'fn ' || n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
    ORDER BY 1`;
  return rows.map((r) => r.o as string);
}

let before: string[] = [];
const running: Listener<any>[] = [];

beforeEach(async () => {
  before = await objects();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 2000 })));
  // Nothing ran: the canary lives and no object appeared or vanished (tests drop what they install).
  expect(await t.sql`SELECT id FROM canary`).toEqual([{ id: 1 }]);
  expect(await objects()).toEqual(before);
  await t.sql`DELETE FROM pgpubsub.notifications`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
  await t.sql`TRUNCATE items RESTART IDENTITY`;
});

function listen(...args: Parameters<typeof createListener>) {
  const l = createListener(...args);
  running.push(l);
  return l;
}

describe('hostile input', () => {
  it('delivers hostile channel names verbatim through notify(), LISTEN and the claim', async () => {
    const names = [...INJECTIONS, 'a"b', "it's", '名前 🐘', 'select', 'x'.repeat(63)];
    const channels = names.map((name) => channel(name, v.object({ text: v.string() })));
    const seen: [string, string][] = [];
    const l = listen(t.db, { pollIntervalMs: false });
    for (const ch of channels) l.on(ch, (e) => void seen.push([e.channel, e.payload.text]));
    await l.start();
    for (const ch of channels) await notify(t.db, ch, { text: ch.name });
    // Handlers run before their claim commits: wait for the table, then look at what they saw.
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, {
      what: 'every hostile channel delivered',
    });
    expect(seen.sort()).toEqual(names.map((n) => [n, n]).sort());
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('refuses channel names that LISTEN would mangle, with a clear error', () => {
    for (const bad of ['', ' lead', 'trail ', 'tab\there', 'nul\u0000', 'é'.repeat(32)]) {
      try {
        channel(bad, v.string());
        expect.unreachable(`accepted ${JSON.stringify(bad)}`);
      } catch (error) {
        expect(isPgPubSubError(error, 'INVALID_CHANNEL_NAME')).toBe(true);
      }
    }
  });

  it('installs triggers on hostile table and column names and records rows verbatim', async () => {
    const schemaName = '"; DROP TABLE canary; --';
    const tableName = "t'); DROP TABLE canary; --";
    const columnName = 'c"); DROP TABLE canary; --';
    const s = pgSchema(schemaName);
    const hostile = s.table(tableName, { id: serial('id').primaryKey(), value: text(columnName).notNull() });
    const ch = triggerChannel(hostile, {
      on: ['insert', 'update', 'delete'],
      name: "ch'); DROP TABLE canary; --",
      columns: ['value'],
    });
    const q = (x: string) => `"${x.replaceAll('"', '""')}"`;
    await t.sql.unsafe(`CREATE SCHEMA ${q(schemaName)}`);
    await t.sql.unsafe(
      `CREATE TABLE ${q(schemaName)}.${q(tableName)} (id serial PRIMARY KEY, ${q(columnName)} text NOT NULL)`,
    );
    const created = await objects();
    try {
      for (const statement of createTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(statement);
      await t.db.insert(hostile).values({ value: INJECTIONS[0]! });
      await t.db.update(hostile).set({ value: INJECTIONS[1]! });
      await t.db.delete(hostile);
      const events: unknown[] = [];
      await createListener(t.db)
        .on(ch, (e) => void events.push([e.op, e.old?.value ?? null, e.new?.value ?? null]))
        .drain();
      expect(events).toEqual([
        ['insert', null, INJECTIONS[0]],
        ['update', INJECTIONS[0], INJECTIONS[1]],
        ['delete', INJECTIONS[1], null],
      ]);
      for (const statement of dropTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(statement);
      expect(await objects()).toEqual(created);
    } finally {
      await t.sql.unsafe(`DROP SCHEMA ${q(schemaName)} CASCADE`);
    }
  });

  it('keeps a channel name containing the $pgpubsub$ dollar tag inside its string literal', async () => {
    // Regression (fixed in 12aa7a9): the function body was delimited by a fixed $pgpubsub$ tag, so a
    // name containing it ended the body early, and with check_function_bodies = off (pg_restore, some
    // migration setups) the rest of the name ran as SQL.
    const name = '$pgpubsub$;DROP TABLE IF EXISTS canary;SELECT $pgpubsub$';
    let ch: ReturnType<typeof triggerChannel<typeof items, 'insert'>>;
    try {
      ch = triggerChannel(items, { on: ['insert'], name });
    } catch (error) {
      // Refusing the name is a fix too.
      expect(isPgPubSubError(error, 'INVALID_CHANNEL_NAME')).toBe(true);
      return;
    }
    const conn = await t.sql.reserve();
    try {
      await conn.unsafe('SET check_function_bodies = off');
      for (const statement of createTriggerSql(resolveTriggerSpec(ch))) await conn.unsafe(statement);
    } finally {
      await conn.unsafe('RESET check_function_bodies').catch(() => {});
      conn.release();
    }
    expect(await t.sql`SELECT to_regclass('canary') IS NOT NULL AS ok`).toEqual([{ ok: true }]);
    try {
      await t.db.insert(items).values({ name: 'x', qty: 1 });
      expect(await countNotifications(t.sql, name)).toEqual({ pending: 1, failed: 0 });
    } finally {
      for (const statement of dropTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(statement);
    }
  });

  it('treats `when` as trusted SQL: a statement break in it is a syntax error when the trigger is installed', async () => {
    // `when` is code, like a migration (docs/security.md). A condition that tries to end the
    // statement cannot: it sits inside coalesce((…), false) in a PL/pgSQL function body.
    const ch = triggerChannel(items, {
      on: ['insert'],
      name: 'when_hostile',
      when: 'true); DROP TABLE canary; --',
    });
    let failure: unknown;
    try {
      for (const statement of createTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(statement);
    } catch (error) {
      failure = error;
    }
    expect((failure as { code?: string })?.code).toBe('42601'); // syntax_error
  });

  it('stores hostile payloads and context verbatim and matches filters literally', async () => {
    const jobs = channel(
      'hostile_jobs',
      v.object({ text: v.string(), nested: v.object({ list: v.array(v.string()) }) }),
    );
    const got: { payload: unknown; context: unknown }[] = [];
    for (const [i, text] of INJECTIONS.entries()) {
      await t.db.transaction(async (tx) => {
        await withContext(tx, { tenant: i % 2 ? "t1' OR '1'='1" : 't1', [text]: text });
        await notify(tx, jobs, { text, nested: { list: [text, '$pgpubsub$', "'", '"'] } });
      });
    }
    // A filter value crafted to widen a hand-built WHERE clause matches nothing extra.
    const l = listen(t.db, { filter: { tenant: "t1' OR '1'='1" }, pollIntervalMs: false }).on(jobs, (e) => {
      got.push({ payload: e.payload, context: e.context });
    });
    await l.start();
    const odd = INJECTIONS.filter((_, i) => i % 2);
    await waitFor(
      async () =>
        (await countNotifications(t.sql, 'hostile_jobs')).pending === INJECTIONS.length - odd.length,
      { what: 'the filtered notifications' },
    );
    expect(got.map((g) => (g.payload as { text: string }).text).sort()).toEqual([...odd].sort());
    for (const g of got) {
      const text = (g.payload as { text: string }).text;
      expect(g.payload).toEqual({ text, nested: { list: [text, '$pgpubsub$', "'", '"'] } });
      expect(g.context).toEqual({ tenant: "t1' OR '1'='1", [text]: text });
    }
    // The others are untouched, still pending for a listener with the right filter.
    expect(await countNotifications(t.sql, 'hostile_jobs')).toEqual({
      pending: INJECTIONS.length - odd.length,
      failed: 0,
    });
  });

  it('rejects payloads PostgreSQL jsonb cannot store, storing nothing', async () => {
    const jobs = channel('hostile_nul', v.object({ text: v.string() }));
    for (const text of ['nul \u0000 inside', 'lone surrogate \ud800']) {
      await expect(
        t.db.transaction(async (tx) => {
          await notify(tx, jobs, { text });
        }),
      ).rejects.toThrow();
    }
    for (const payload of [{ text: 1 }, { text: Number.NaN }, { text: 10n }]) {
      await expect(notify(t.db, jobs, payload as never)).rejects.toSatisfy((error: unknown) =>
        isPgPubSubError(error, 'INVALID_PAYLOAD'),
      );
    }
    await expect(
      t.db.transaction(async (tx) => {
        await withContext(tx, { big: 10n } as never);
      }),
    ).rejects.toSatisfy((error: unknown) => isPgPubSubError(error, 'INVALID_CONTEXT'));
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('refuses an oversize broadcast with PAYLOAD_TOO_LARGE and sends nothing', async () => {
    const bust = channel('hostile_bust', v.object({ key: v.string() }), { broadcast: true });
    const seen: string[] = [];
    const l = listen(t.db).on(bust, (e) => void seen.push(e.payload.key));
    await l.start();
    // 7999 bytes is the limit: multi-byte characters count as bytes, not characters.
    const fits = `${'é'.repeat(3994)}a`;
    expect(Buffer.byteLength(JSON.stringify({ key: fits }))).toBe(7999);
    try {
      await notify(t.db, bust, { key: `${fits}a` });
      expect.unreachable();
    } catch (error) {
      expect(isPgPubSubError(error, 'PAYLOAD_TOO_LARGE')).toBe(true);
      expect((error as Error).message).toMatch(/is 8000 bytes; NOTIFY carries at most 7999/);
    }
    await notify(t.db, bust, { key: fits });
    await waitFor(() => seen.length === 1, { what: 'the broadcast that fits' });
    expect(seen).toEqual([fits]);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('sends malformed rows to failed with a reason, leaves unknown channels pending, and keeps working', async () => {
    const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'], name: 'hostile_items' });
    const jobs = channel('hostile_rows', v.object({ n: v.number(), tags: v.array(v.string()) }));
    await installChannels(t.sql, [itemEvents]);
    try {
      const bad = await t.sql`
        INSERT INTO pgpubsub.notifications (channel, op, old, new, payload) VALUES
          ('hostile_rows', NULL, NULL, NULL, '{"n": "one", "tags": []}'),
          ('hostile_rows', NULL, NULL, NULL, '[1, 2, 3]'),
          ('hostile_rows', NULL, NULL, NULL, '"a string"'),
          ('hostile_rows', NULL, NULL, NULL, NULL),
          ('hostile_items', 'insert', NULL, '{"id": 1, "name": "x", "qty": "not a number"}', NULL),
          ('hostile_items', 'insert', NULL, '{"id": "1; DROP TABLE canary", "name": "x", "qty": 1}', NULL),
          ('hostile_items', 'update', '{"id": 1, "name": "x", "qty": 99999999999}', '{"id": 1, "name": "x", "qty": 1}', NULL),
          ('hostile_items', 'insert', NULL, '[1, 2]', NULL),
          ('nobody_listens', NULL, NULL, NULL, '{"n": 1}')
        RETURNING id::text`;
      const badIds = bad.map((r) => r.id as string);
      const processed: string[] = [];
      const dead: string[] = [];
      const l = listen(t.db, { pollIntervalMs: false, maxAttempts: 1 })
        .on(itemEvents, (e) => void processed.push(`${e.op}:${e.new?.name ?? e.old?.name}`))
        .on(jobs, (e) => void processed.push(`job:${e.payload.n}`));
      l.events.on('dead', (e) => void dead.push(e.id));
      await l.start();
      // Good rows before and after the bad ones are processed; the bad ones do not block them.
      await notify(t.db, jobs, { n: 1, tags: ["'; DROP TABLE canary; --"] });
      await t.db.insert(items).values({ name: 'good', qty: 1 });
      await waitFor(async () => dead.length === 8 && (await countNotifications(t.sql)).pending === 1, {
        what: 'good rows and dead letters',
      });
      await notify(t.db, jobs, { n: 2, tags: [] });
      await waitFor(async () => (await countNotifications(t.sql, 'hostile_rows')).pending === 0, {
        what: 'a good row after the dead letters',
      });
      expect(processed.sort()).toEqual(['insert:good', 'job:1', 'job:2']);
      expect(dead.sort()).toEqual(badIds.slice(0, 8).sort());

      const rows =
        await t.sql`SELECT id::text, channel, status, attempts, last_error FROM pgpubsub.notifications ORDER BY id`;
      expect(rows.map((r) => [r.channel, r.status])).toEqual([
        ...Array(4).fill(['hostile_rows', 'failed']),
        ...Array(4).fill(['hostile_items', 'failed']),
        ['nobody_listens', 'pending'],
      ]);
      const reasons = rows.map((r) => r.last_error as string | null);
      for (const reason of reasons.slice(0, 4)) expect(reason).toMatch(/Stored payload does not match/);
      for (const reason of reasons.slice(4, 8)) expect(reason).toMatch(/DECODE_FAILED|cannot be decoded/);
      expect(reasons[8]).toBeNull();
    } finally {
      for (const statement of dropTriggerSql(resolveTriggerSpec(itemEvents))) await t.sql.unsafe(statement);
    }
  });

  it('never calls a trigger handler with an op that contradicts its row images', async () => {
    // Regression (fixed in f8eb996): op/old/new used to reach the handler unchecked, typed as if
    // well-formed.
    const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'], name: 'hostile_ops' });
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, op, old, new) VALUES
        ('hostile_ops', NULL, NULL, '{"id": 1, "name": "no op", "qty": 1}'),
        ('hostile_ops', 'insert', NULL, NULL),
        ('hostile_ops', 'delete', NULL, '{"id": 1, "name": "delete without old", "qty": 1}'),
        ('hostile_ops', 'update', '{"id": 1, "name": "update without new", "qty": 1}', NULL)`;
    const calls: unknown[] = [];
    const summary = await createListener(t.db, { maxAttempts: 1 })
      .on(itemEvents, (e) => void calls.push([e.op, e.old, e.new]))
      .drain();
    expect(calls).toEqual([]);
    expect(summary).toMatchObject({ processed: 0, dead: 4 });
    expect(await countNotifications(t.sql, 'hostile_ops')).toEqual({ pending: 0, failed: 4 });
  });

  it('does not evaluate SQL hidden in stored row images or payloads when decoding', async () => {
    const itemEvents = triggerChannel(items, { on: ['insert'], name: 'hostile_decode' });
    const image = { id: 7, name: "x'); DROP TABLE canary; --", qty: 1, 'qty); DROP TABLE canary; --': 1 };
    await t.sql.unsafe(
      `INSERT INTO pgpubsub.notifications (channel, op, new) VALUES ('hostile_decode', 'insert', $1::text::jsonb)`,
      [JSON.stringify(image)],
    );
    const names: string[] = [];
    const summary = await createListener(t.db)
      .on(itemEvents, (e) => void names.push(e.new.name))
      .drain();
    expect(summary).toMatchObject({ processed: 1 });
    expect(names).toEqual(["x'); DROP TABLE canary; --"]);
    expect(await countNotifications(t.sql, 'hostile_decode')).toEqual({ pending: 0, failed: 0 });
  });
});
