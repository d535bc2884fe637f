import { sql as dsql, eq } from 'drizzle-orm';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel, triggerChannel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { notify, withContext } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications, installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const authors = pgTable('authors', { id: serial().primaryKey(), name: text().notNull() });
const posts = pgTable('posts', {
  id: serial().primaryKey(),
  authorId: integer('author_id').notNull(),
  content: text().notNull(),
});
const effects = pgTable('effects', {
  id: serial().primaryKey(),
  key: text().notNull().unique(),
  note: text(),
});

const authorEvents = triggerChannel(authors, { on: ['insert', 'update', 'delete'] });
const emailRequested = channel(
  'email_requested',
  v.object({
    to: v.pipe(v.string(), v.email()),
    subject: v.string(),
    cc: v.optional(v.nullable(v.string())),
  }),
);
const cacheBust = channel('cache_bust', v.object({ key: v.string() }), { broadcast: true });

const t = useTestDatabase([
  'CREATE TABLE authors (id serial PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE posts (id serial PRIMARY KEY, author_id integer NOT NULL, content text NOT NULL)',
  'CREATE TABLE effects (id serial PRIMARY KEY, key text NOT NULL UNIQUE, note text)',
]);

const running: Listener<any>[] = [];
function listen(...args: Parameters<typeof createListener>) {
  const l = createListener(...args);
  running.push(l);
  return l;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE authors, posts, effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});

describe('listener', () => {
  it('runs trigger handlers exactly once, in the transaction that deletes the notification', async () => {
    await installChannels(t.sql, [authorEvents]);
    const seen: unknown[] = [];
    const l = listen(t.db, { pollIntervalMs: false }).on(authorEvents, async (event, tx) => {
      seen.push([event.op, event.old?.name ?? null, event.new?.name ?? null, event.attempt]);
      if (event.op === 'insert')
        await tx.insert(posts).values({ authorId: event.new.id, content: `Welcome ${event.new.name}` });
    });
    await l.start();
    await t.db.insert(authors).values([{ name: 'Ada' }, { name: "O'Brien" }]);
    await t.db.update(authors).set({ name: 'Ada L.' }).where(eq(authors.name, 'Ada'));
    await t.db.delete(authors).where(eq(authors.name, "O'Brien"));
    await waitFor(async () => seen.length === 4 && (await countNotifications(t.sql)).pending === 0, {
      what: '4 events',
    });
    // Exactly these events, each once. Their order is not promised (docs/guarantees.md): an idle
    // probe briefly locks the first ready row, and a claim running at that moment skips it.
    const byText = (a: unknown, b: unknown) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    expect(seen.toSorted(byText)).toEqual(
      [
        ['insert', null, 'Ada', 1],
        ['insert', null, "O'Brien", 1],
        ['update', 'Ada', 'Ada L.', 1],
        ['delete', "O'Brien", null, 1],
      ].toSorted(byText),
    );
    expect((await t.db.select().from(posts)).map((p) => p.content).sort()).toEqual([
      'Welcome Ada',
      "Welcome O'Brien",
    ]);
  });

  it('delivers nothing for a rolled-back producer transaction', async () => {
    await installChannels(t.sql, [authorEvents]);
    let calls = 0;
    await t.db
      .transaction(async (tx) => {
        await tx.insert(authors).values({ name: 'ghost' });
        await notify(tx, emailRequested, { to: 'a@b.co', subject: 'ghost' });
        tx.rollback();
      })
      .catch(() => {});
    const l = listen(t.db)
      .on(authorEvents, () => void calls++)
      .on(emailRequested, () => void calls++);
    expect(await l.drain()).toMatchObject({ processed: 0, retried: 0, dead: 0 });
    expect(calls).toBe(0);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('processes notifications committed while no listener ran, on start', async () => {
    for (let i = 0; i < 120; i++) await notify(t.db, emailRequested, { to: `u${i}@x.io`, subject: `s${i}` });
    const got: string[] = [];
    const l = listen(t.db, { pollIntervalMs: false, batchSize: 7 }).on(
      emailRequested,
      async ({ payload }, tx) => {
        got.push(payload.subject);
        await tx.insert(effects).values({ key: payload.subject });
      },
    );
    await l.start();
    await waitFor(
      async () => (await t.db.select({ n: dsql<number>`count(*)::int` }).from(effects))[0]!.n === 120,
    );
    expect(new Set(got).size).toBe(120);
    // Claims overlap (concurrency 4), each handling its batch in order: the first batch starts first.
    expect(got[0]).toBe('s0');
    expect(got.filter((s) => ['s0', 's1', 's2'].includes(s))).toEqual(['s0', 's1', 's2']);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('validates custom payloads before writing and keeps quotes and big payloads intact', async () => {
    await expect(notify(t.db, emailRequested, { to: 'not-an-email', subject: 'x' })).rejects.toThrow(
      /Invalid payload for channel "email_requested": to: Invalid email/,
    );
    try {
      await notify(t.db, emailRequested, { to: 'a@b.co' } as any);
      expect.unreachable();
    } catch (error) {
      expect(isPgPubSubError(error, 'INVALID_PAYLOAD')).toBe(true);
      expect((error as Error).message).toContain('subject');
    }
    await expect(notify(t.db, emailRequested, { to: 'a@b.co', subject: 'nul \0 byte' })).rejects.toThrow(
      /contains a NUL character or an unpaired surrogate/,
    );
    await expect(notify(t.db, emailRequested, { to: 'a@b.co', subject: 'half \ud800' })).rejects.toThrow(
      /Payload for channel "email_requested".*unpaired surrogate/,
    );
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
    const big = `'); DROP TABLE effects; -- ${'é'.repeat(600_000)}`;
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: big, cc: null });
    let subject = '';
    let cc: unknown = 'unset';
    await listen(t.db)
      .on(emailRequested, ({ payload }) => {
        subject = payload.subject;
        cc = payload.cc;
      })
      .drain();
    expect(subject).toBe(big);
    expect(cc).toBeNull();
  });

  it('rolls back a failing handler, records the attempt and retries without blocking others', async () => {
    for (const subject of ['ok1', 'boom', 'ok2'])
      await notify(t.db, emailRequested, { to: 'a@b.co', subject });
    let boomCalls = 0;
    const l = listen(t.db, { backoff: () => 0, maxAttempts: 3 }).on(
      emailRequested,
      async ({ payload, attempt }, tx) => {
        await tx.insert(effects).values({ key: `${payload.subject}#${attempt}` });
        if (payload.subject === 'boom' && ++boomCalls < 3) throw new Error(`boom attempt ${attempt}`);
      },
    );
    // With no backoff the retries are due at once, so one drain sees them through.
    expect(await l.drain()).toMatchObject({ processed: 3, retried: 2, dead: 0 });
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
    const keys = (await t.db.select().from(effects)).map((e) => e.key).sort();
    expect(keys).toEqual(['boom#3', 'ok1#1', 'ok2#1']);
  });

  it('dead-letters after maxAttempts with the error, and keeps going', async () => {
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'always' });
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'fine' });
    const dead: unknown[] = [];
    const l = listen(t.db, { backoff: () => 0, maxAttempts: 2 }).on(emailRequested, ({ payload }) => {
      if (payload.subject === 'always') throw new Error('always fails');
    });
    l.events.on('dead', (e) => dead.push(e.attempts));
    await l.drain();
    await l.drain();
    const [row] = await t.sql`SELECT status, attempts, last_error FROM pgpubsub.notifications`;
    expect(row).toMatchObject({ status: 'failed', attempts: 2 });
    expect(row!.last_error).toContain('always fails');
    expect(dead).toEqual([2]);
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 1 });
  });

  it('sends poison rows straight to failed with the reason', async () => {
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload) VALUES ('email_requested', '{"to": 5}'), ('email_requested', '"just a string"')`;
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'good' });
    let good = 0;
    const summary = await listen(t.db)
      .on(emailRequested, () => void good++)
      .drain();
    expect(summary).toMatchObject({ processed: 1, dead: 2 });
    const rows =
      await t.sql`SELECT last_error FROM pgpubsub.notifications WHERE status = 'failed' ORDER BY id`;
    expect(rows.map((r) => r.last_error)).toEqual([
      expect.stringContaining('Stored payload does not match'),
      expect.stringContaining('Stored payload does not match'),
    ]);
  });

  it('attaches transaction-local context and filters on it, live and in recovery', async () => {
    await installChannels(t.sql, [authorEvents]);
    await t.db.transaction(async (tx) => {
      await withContext(tx, { tenant: 't1', trace: 'abc' });
      await tx.insert(authors).values({ name: 'in t1' });
      await notify(tx, emailRequested, { to: 'a@b.co', subject: 't1 mail' });
    });
    await t.db.insert(authors).values({ name: 'no context' });
    await expect(withContext(t.db as any, { tenant: 'x' })).rejects.toThrow(/must be given a transaction/);
    const seen: unknown[] = [];
    const l = listen(t.db, { filter: { tenant: 't1' }, pollIntervalMs: false })
      .on(authorEvents, (e) => void seen.push([e.op, e.context]))
      .on(emailRequested, (e) => void seen.push(['mail', e.context]));
    await l.start();
    await waitFor(() => seen.length === 2);
    // Channels are claimed independently: no order across channels.
    expect(seen).toEqual(
      expect.arrayContaining([
        ['insert', { tenant: 't1', trace: 'abc' }],
        ['mail', { tenant: 't1', trace: 'abc' }],
      ]),
    );
    await t.db.transaction(async (tx) => {
      await withContext(tx, { tenant: 't1' });
      await tx.insert(authors).values({ name: 'live t1' });
    });
    await t.db.insert(authors).values({ name: 'live none' });
    await waitFor(async () => seen.length === 3 && (await countNotifications(t.sql)).pending === 2);
    expect(seen[2]).toEqual(['insert', { tenant: 't1' }]);
    const left =
      await t.sql`SELECT channel, new->>'name' AS name, context FROM pgpubsub.notifications ORDER BY id`;
    expect(left).toEqual([
      { channel: 'authors', name: 'no context', context: {} },
      { channel: 'authors', name: 'live none', context: {} },
    ]);
  });

  it('broadcasts to every listener, stores nothing and refuses oversize payloads', async () => {
    const a: string[] = [];
    const b: string[] = [];
    const l1 = listen(t.db).on(cacheBust, (e) => void a.push(e.payload.key));
    const db2 = drizzle({ client: t.client({ max: 2 }) });
    const l2 = listen(db2).on(cacheBust, (e) => void b.push(e.payload.key));
    await l1.start();
    await l2.start();
    await notify(t.db, cacheBust, { key: 'users:1' });
    await waitFor(() => a.length === 1 && b.length === 1);
    expect([a, b]).toEqual([['users:1'], ['users:1']]);
    await expect(notify(t.db, cacheBust, { key: 'x'.repeat(9000) })).rejects.toThrow(
      /NOTIFY carries at most 7999/,
    );
    expect(await countNotifications(t.sql)).toEqual({ pending: 0, failed: 0 });
  });

  it('processes a notify() made inside a handler promptly', async () => {
    const chained = channel('chained', v.object({ n: v.number() }));
    const seen: number[] = [];
    const l = listen(t.db, { pollIntervalMs: false }).on(chained, async ({ payload }, tx) => {
      seen.push(payload.n);
      if (payload.n < 5) await notify(tx, chained, { n: payload.n + 1 });
    });
    await l.start();
    await notify(t.db, chained, { n: 1 });
    await waitFor(() => seen.length === 5, { timeoutMs: 20_000, what: 'five handled' });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
  });

  it('wakes an idle listener from a REPEATABLE READ producer whose snapshot predates the idle flag', async () => {
    const producer = await t.sql.reserve();
    try {
      await producer.unsafe('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await producer.unsafe('SELECT 1'); // the snapshot: taken before the listener goes idle
      const seen: string[] = [];
      const l = listen(t.db, { pollIntervalMs: false }).on(emailRequested, ({ payload }) => {
        seen.push(payload.subject);
      });
      await l.start();
      await waitFor(
        async () =>
          (await t.sql`SELECT 1 FROM pgpubsub.wakeups WHERE channel = 'email_requested' AND idle`).length,
        { what: 'the idle flag' },
      );
      // The listener is asleep once none of its statements (the probe after the flag) is running.
      await waitFor(
        async () =>
          (
            await t.sql`SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
            AND state = 'active' AND pid <> pg_backend_pid() AND query NOT ILIKE 'LISTEN%'`
          ).length === 0,
        { what: 'the listener to sleep' },
      );
      await producer.unsafe(
        `SELECT pgpubsub.notify('email_requested', '{"to": "rr@x.io", "subject": "rr"}')`,
      );
      await producer.unsafe('COMMIT');
      await waitFor(() => seen.length === 1, { timeoutMs: 20_000, what: 'the handler' });
      expect(seen).toEqual(['rr']);
    } finally {
      await producer.unsafe('ROLLBACK').catch(() => {});
      producer.release();
    }
  });

  it('recovers after the LISTEN connection is terminated', async () => {
    const got: string[] = [];
    const client = t.client({ max: 4, connection: { application_name: 'listener-under-test' } });
    const l = listen(drizzle({ client }), { pollIntervalMs: false }).on(
      emailRequested,
      (e) => void got.push(e.payload.subject),
    );
    await l.start();
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'before' });
    await waitFor(() => got.length === 1);
    // The LISTEN session is the connection holding the wake-up presence lock (its last statement
    // varies: LISTEN, the lock, or the presence SELECT).
    const killed = await t.sql`SELECT pg_terminate_backend(a.pid) AS ok FROM pg_stat_activity a
      WHERE a.application_name = 'listener-under-test' AND a.pid IN (SELECT l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = hashtext('drizzle-pgpubsub wakeups "pgpubsub"')::oid)`;
    expect(killed.map((r) => r.ok)).toEqual([true]);
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'during' });
    await waitFor(() => got.length === 2, {
      timeoutMs: 10_000,
      what: 'the notification sent around the reconnect',
    });
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'after' });
    await waitFor(() => got.length === 3);
    expect(got).toEqual(['before', 'during', 'after']);
  });

  it('stop() waits for in-flight handlers, then aborts them and rolls back', async () => {
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'slow' });
    let started = false;
    let aborted = false;
    const l = createListener(t.db, { pollIntervalMs: false }).on(emailRequested, async (e, tx) => {
      started = true;
      await tx.insert(effects).values({ key: 'partial' });
      await new Promise<void>((resolve) => {
        e.signal.addEventListener('abort', () => {
          aborted = true;
          resolve();
        });
      });
    });
    await l.start();
    await waitFor(() => started);
    await l.stop({ timeoutMs: 100 });
    expect(aborted).toBe(true);
    expect(await t.db.select().from(effects)).toEqual([]);
    expect(await countNotifications(t.sql)).toEqual({ pending: 1, failed: 0 });
  });

  it('isolates a handler whose SQL fails, and supports nested transactions', async () => {
    await t.db.insert(effects).values({ key: 'taken' });
    for (const subject of ['a', 'taken', 'b']) await notify(t.db, emailRequested, { to: 'a@b.co', subject });
    const l = listen(t.db, { maxAttempts: 1 }).on(emailRequested, async ({ payload }, tx) => {
      // A nested transaction is a savepoint: rolling it back rejects tx.transaction() and keeps the rest.
      await tx
        .transaction(async (inner) => {
          await inner.insert(effects).values({ key: `${payload.subject}-inner` });
          if (payload.subject === 'a') inner.rollback();
        })
        .catch(() => {});
      await tx.insert(effects).values({ key: payload.subject });
    });
    const summary = await l.drain();
    expect(summary).toMatchObject({ processed: 2, dead: 1 });
    const keys = (await t.db.select().from(effects)).map((e) => e.key).sort();
    expect(keys).toEqual(['a', 'b', 'b-inner', 'taken']);
    const [dead] =
      await t.sql`SELECT payload->>'subject' AS subject, last_error FROM pgpubsub.notifications WHERE status = 'failed'`;
    expect(dead).toMatchObject({ subject: 'taken' });
    expect(dead!.last_error).toMatch(/duplicate key value violates unique constraint/);
  });

  it('isolates a notification that breaks its transaction at COMMIT', async () => {
    await t.sql`CREATE TABLE IF NOT EXISTS deferred (id int PRIMARY KEY, parent int REFERENCES deferred(id) DEFERRABLE INITIALLY DEFERRED)`;
    for (const subject of ['ok1', 'orphan', 'ok2'])
      await notify(t.db, emailRequested, { to: 'a@b.co', subject });
    const errors: unknown[] = [];
    const l = listen(t.db, { maxAttempts: 1 }).on(emailRequested, async ({ payload }, tx) => {
      await tx.insert(effects).values({ key: payload.subject });
      if (payload.subject === 'orphan') await tx.execute(dsql`INSERT INTO deferred VALUES (1, 999)`);
    });
    l.events.on('error', (e) => errors.push(e.during));
    const summary = await l.drain();
    expect(summary).toMatchObject({ processed: 2, dead: 1 });
    expect((await t.db.select().from(effects)).map((e) => e.key).sort()).toEqual(['ok1', 'ok2']);
    const [dead] =
      await t.sql`SELECT payload->>'subject' AS subject, last_error FROM pgpubsub.notifications WHERE status = 'failed'`;
    expect(dead).toMatchObject({ subject: 'orphan' });
    expect(dead!.last_error).toMatch(/foreign key constraint/);
    expect(errors.length).toBeGreaterThan(0);
  });

  it('aborts a handler past its timeout, rolls back its writes and retries it', async () => {
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'slow' });
    let attempts = 0;
    let sawAbort = false;
    const l = listen(t.db, { backoff: () => 0, maxAttempts: 3 }).on(
      emailRequested,
      async (e, tx) => {
        attempts++;
        await tx.insert(effects).values({ key: `try${e.attempt}` });
        if (e.attempt === 1) {
          e.signal.addEventListener('abort', () => (sawAbort = true));
          await tx.execute(dsql`SELECT pg_sleep(30)`);
        }
      },
      { timeoutMs: 200 },
    );
    const summary = await l.drain();
    expect(summary).toMatchObject({ processed: 1, retried: 1 });
    expect(attempts).toBe(2);
    expect(sawAbort).toBe(true);
    expect((await t.db.select().from(effects)).map((e) => e.key)).toEqual(['try2']);
  });

  it('refuses to run queries on a handler transaction after the handler finished', async () => {
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'leak' });
    let leaked: any;
    await listen(t.db)
      .on(emailRequested, (_e, tx) => {
        leaked = tx;
      })
      .drain();
    const error = await leaked
      .insert(effects)
      .values({ key: 'late' })
      .catch((e: Error) => e);
    expect(String(error.cause ?? error)).toMatch(/already handled/);
    expect(await t.db.select().from(effects)).toEqual([]);
  });

  it('stop() is bounded even when a handler ignores its signal', async () => {
    await notify(t.db, emailRequested, { to: 'a@b.co', subject: 'stubborn' });
    let started = false;
    const l = createListener(t.db, { pollIntervalMs: false }).on(emailRequested, async (_e, tx) => {
      started = true;
      await tx.insert(effects).values({ key: 'stubborn' });
      await new Promise(() => {}); // never settles, ignores event.signal
    });
    await l.start();
    await waitFor(() => started);
    const begun = Date.now();
    await l.stop({ timeoutMs: 100 });
    expect(Date.now() - begun).toBeLessThan(10_000);
    expect(await t.db.select().from(effects)).toEqual([]);
    expect(await countNotifications(t.sql)).toEqual({ pending: 1, failed: 0 });
  });

  it('can be started again after a failed start, and stop() during start() wins', async () => {
    const l = listen(t.db, { schema: 'missing_schema' }).on(emailRequested, () => {});
    await expect(l.start()).rejects.toThrow(/"missing_schema"."notifications" does not exist/);
    l.configure({ schema: 'pgpubsub' });
    await l.start();
    await l.stop();
    let calls = 0;
    const raced = createListener(t.db).on(emailRequested, () => void calls++);
    const starting = raced.start();
    await raced.stop();
    await starting;
    // Had the raced listener kept running, it would compete for these with the next one.
    for (let i = 0; i < 20; i++)
      await notify(t.db, emailRequested, { to: 'a@b.co', subject: `after stop ${i}` });
    let handled = 0;
    await listen(t.db, { pollIntervalMs: false })
      .on(emailRequested, () => void handled++)
      .start();
    await waitFor(async () => handled === 20 && (await countNotifications(t.sql)).pending === 0);
    expect(calls).toBe(0);
  });

  it('gives clear errors for misuse', async () => {
    expect(() => createListener({} as any)).toThrow(/needs a Drizzle database on postgres.js/);
    const l = createListener(t.db, { channels: ['nope'] }).on(emailRequested, () => {});
    await expect(l.start()).rejects.toThrow(
      /Channel "nope" has no handler in this listener. Known channels: email_requested/,
    );
    expect(() =>
      createListener(t.db)
        .on(emailRequested, () => {})
        .on(emailRequested, () => {}),
    ).toThrow(/already has a handler/);
    expect(() => createListener(t.db, { concurrency: 0 })).toThrow(
      /`concurrency` must be a positive integer/,
    );
    await expect(createListener(t.db).start()).rejects.toThrow(/No handlers/);
  });
});
