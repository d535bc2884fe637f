/**
 * Runtime hardening (issue 14, runtime items): the scheduler never strands a channel after claim
 * errors, claims choose their own isolation level, the pool is checked against the concurrency,
 * handler context does not leak, backoff and timers are validated and clamped, a handler slower than
 * idle_in_transaction_session_timeout ends as a dead letter, and handler errors are stored verbatim.
 */
import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { notify, withContext } from '../src/notify.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase(['CREATE TABLE done (n int NOT NULL)']);

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 2000 })));
});

/** Stores `n` notifications of `name` in one statement. */
async function enqueue(name: string, n: number): Promise<void> {
  await t.sql`SELECT pgpubsub.notify(${name}, jsonb_build_object('n', g)) FROM generate_series(1, ${n}::int) g`;
}

describe('claim errors (issue 14, item 3)', () => {
  it('keeps claiming a channel after two claim errors close together', async () => {
    // Two claims run side by side (full batches); the first handler of each terminates its own
    // backend once both are running, so both claims fail within milliseconds: the second error's
    // backoff ends after the first one's timer.
    const ch = channel('two_errors', v.object({ n: v.number() }));
    const listener = createListener(drizzle(t.client({ max: 6 })), {
      concurrency: 2,
      batchSize: 10,
      pollIntervalMs: false,
    });
    const killed = new Set<number>();
    let arrived = 0;
    listener.on(ch, async (e, tx) => {
      const n = e.payload.n;
      if ((n === 1 || n === 11) && !killed.has(n)) {
        killed.add(n);
        arrived++;
        await waitFor(() => arrived >= 2, { timeoutMs: 5000, what: 'both claims' }).catch(() => {});
        await tx.execute(dsql`SELECT pg_terminate_backend(pg_backend_pid())`);
      }
      await tx.execute(dsql`INSERT INTO done VALUES (${n})`);
    });
    running.push(listener);
    await enqueue(ch.name, 200);
    const errors: unknown[] = [];
    listener.events.on('error', ({ error }) => void errors.push(error));
    await listener.start();
    await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
      timeoutMs: 20_000,
      what: 'every notification to be handled after two claim errors',
    });
    expect(killed.size).toBe(2);
    expect(errors.length).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('handles 3,000 notifications in a database whose default_transaction_isolation is serializable', async () => {
    const ch = channel('serializable', v.object({ n: v.number() }));
    await t.sql.unsafe(`ALTER DATABASE "${t.name}" SET default_transaction_isolation = 'serializable'`);
    try {
      const client = t.client({ max: 10 });
      const [row] = await client`SHOW default_transaction_isolation`;
      expect(row?.default_transaction_isolation).toBe('serializable');
      const listener = createListener(drizzle({ client }), { concurrency: 4, pollIntervalMs: false }).on(
        ch,
        async (e, tx) => {
          await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n})`);
        },
      );
      running.push(listener);
      await enqueue(ch.name, 3000);
      await listener.start();
      await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
        timeoutMs: 30_000,
        what: 'all 3,000 notifications to be handled under serializable',
      });
    } finally {
      await t.sql.unsafe(`ALTER DATABASE "${t.name}" RESET default_transaction_isolation`);
    }
  }, 60_000);

  it('two listeners and trickling producers under a serializable default: every row handled, no listener error', async () => {
    const ch = channel('serializable_idle', v.object({ n: v.number() }));
    await t.sql.unsafe(`ALTER DATABASE "${t.name}" SET default_transaction_isolation = 'serializable'`);
    try {
      const errors: string[] = [];
      for (let i = 0; i < 2; i++) {
        const listener = createListener(drizzle({ client: t.client({ max: 4 }) }), {
          concurrency: 2,
          pollIntervalMs: false,
        }).on(ch, async (e, tx) => {
          await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n})`);
        });
        listener.events.on('error', ({ error, during }) => void errors.push(`${during}: ${String(error)}`));
        running.push(listener);
        await listener.start();
      }
      // Small transactions, so both listeners keep going idle and racing for the next row: the
      // idle protocol's flag writes and probes run beside claims that delete the rows they look at.
      const producer = t.client({ max: 4 });
      await Promise.all(
        Array.from({ length: 4 }, async (_, p) => {
          for (let i = 0; i < 150; i++) {
            await producer.begin(async (tx) => {
              await tx`SELECT pgpubsub.notify(${ch.name}, ${tx.json({ n: 100_000 + p * 1000 + i })})`;
            });
          }
        }),
      );
      await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
        timeoutMs: 30_000,
        what: 'all 600 notifications to be handled under serializable',
      });
      const [done] = await t.sql`SELECT count(*)::int AS n FROM done WHERE n >= 100000`;
      expect(done!.n).toBe(600);
      expect(errors).toEqual([]);
    } finally {
      await t.sql.unsafe(`ALTER DATABASE "${t.name}" RESET default_transaction_isolation`);
    }
  }, 60_000);
});

describe('pool size (issue 14, item 5)', () => {
  it('refuses at start() a concurrency the pool cannot serve, saying what to do', async () => {
    const ch = channel('pool_small', v.object({ n: v.number() }));
    const listener = createListener(drizzle(t.client({ max: 10 })), { concurrency: 16 }).on(ch, () => {});
    const error = await listener.start().then(
      () => null,
      (e: unknown) => e,
    );
    running.push(listener);
    expect(isPgPubSubError(error, 'POOL_TOO_SMALL')).toBe(true);
    expect((error as Error).message).toMatch(
      /max 10 .*concurrency 16 needs 17.*postgres\(url, \{ max: 17 \}\).*lower `concurrency` to 9/s,
    );
  });

  it('defaults the concurrency to what the pool can serve', () => {
    const listener = createListener(drizzle(t.client({ max: 2 })));
    expect(listener.settings.concurrency).toBe(1);
    expect(createListener(drizzle(t.client({ max: 10 }))).settings.concurrency).toBe(4);
  });

  it('a handler that reads through db instead of tx completes with the largest accepted concurrency', async () => {
    const ch = channel('pool_db', v.object({ n: v.number() }));
    const client = t.client({ max: 10 });
    const db = drizzle({ client });
    const listener = createListener(db, { concurrency: 9, batchSize: 5, pollIntervalMs: false }).on(
      ch,
      async (e, tx) => {
        await db.execute(dsql`SELECT pg_sleep(0.001)`);
        await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n})`);
      },
    );
    running.push(listener);
    await enqueue(ch.name, 500);
    await listener.start();
    await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
      timeoutMs: 30_000,
      what: 'handlers using db to finish',
    });
  }, 60_000);
});

describe('handler context (issue 14, item 11)', () => {
  it('withContext() in one handler does not leak into the next notifications of the batch', async () => {
    const ch = channel('ctx_in', v.object({ n: v.number() }));
    const out = channel('ctx_out', v.object({ from: v.number() }));
    const listener = createListener(t.db, { batchSize: 10 }).on(ch, async (e, tx) => {
      if (e.payload.n === 1) await withContext(tx, { a: 1 });
      await notify(tx, out, { from: e.payload.n });
    });
    await enqueue(ch.name, 3);
    const summary = await listener.drain();
    expect(summary.processed).toBe(3);
    const rows = await t.sql`SELECT (payload->>'from')::int AS from, context FROM pgpubsub.notifications
      WHERE channel = ${out.name} ORDER BY 1`;
    expect(rows.map((r) => [r.from, r.context])).toEqual([
      [1, { a: 1 }],
      [2, {}],
      [3, {}],
    ]);
  });
});

describe('backoff and timers (issue 14, item 16)', () => {
  it.each([
    ['undefined', undefined],
    ['NaN', Number.NaN],
    ['negative', -5],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])(
    'a backoff returning %s is recorded as the attempt error and replaced by the default delay',
    async (label, value) => {
      const ch = channel(`bad_backoff_${label.toLowerCase()}`, v.object({ n: v.number() }));
      const listener = createListener(t.db, { maxAttempts: 5 }).on(
        ch,
        () => {
          throw new Error('handler failed');
        },
        { backoff: () => value as number },
      );
      await enqueue(ch.name, 1);
      const summary = await listener.drain();
      expect(summary.retried).toBe(1);
      const [row] =
        await t.sql`SELECT attempts, last_error, status, run_at > now() + interval '0.5 s' AS later
      FROM pgpubsub.notifications WHERE channel = ${ch.name}`;
      expect(row).toMatchObject({ attempts: 1, status: 'pending', later: true });
      expect(row?.last_error).toContain(
        `The backoff function of "${ch.name}" returned ${String(value)} for attempt 1`,
      );
      expect(row?.last_error).toContain('caused by Error: handler failed');
    },
  );

  it('refuses a backoff that is not a function at .on()', () => {
    const ch = channel('backoff_not_fn', v.object({ n: v.number() }));
    expect(() => createListener(t.db).on(ch, () => {}, { backoff: 1000 as never })).toThrow(
      /`backoff` must be a function/,
    );
  });

  /** A client that counts the statements it sends. */
  function countingClient() {
    const counter = { queries: 0 };
    const client = t.client({
      max: 6,
      debug: () => {
        counter.queries++;
      },
    });
    return { counter, db: drizzle({ client }) };
  }

  /** Statements sent over `ms` of real time. */
  async function queriesDuring(counter: { queries: number }, ms: number): Promise<number> {
    const before = counter.queries;
    const until = performance.now() + ms;
    await waitFor(() => performance.now() >= until, { timeoutMs: ms + 5000, what: 'the window to pass' });
    return counter.queries - before;
  }

  it('a retry more than 24.8 days ahead leaves the listener idle (no setTimeout overflow)', async () => {
    const ch = channel('far_retry', v.object({ n: v.number() }));
    const { counter, db } = countingClient();
    // idleWaitMs: the idle protocol may poll for up to that long while unrelated transactions of
    // the cluster are in progress; the window measures what comes after.
    const listener = createListener(db, { pollIntervalMs: false, idleWaitMs: 50 }).on(
      ch,
      () => {
        throw new Error('later');
      },
      { backoff: () => 30 * 24 * 3600 * 1000 },
    );
    running.push(listener);
    await enqueue(ch.name, 1);
    let failed = 0;
    listener.events.on('failed', () => void failed++);
    await listener.start();
    await waitFor(() => failed === 1, { what: 'the first attempt to fail' });
    await queriesDuring(counter, 200); // the idle protocol's flag write and probes
    // A busy loop sends hundreds of statements here. The watch of transactions still in progress
    // (other test files share the cluster) polls with a backoff: a handful, more on a loaded machine.
    expect(await queriesDuring(counter, 1500)).toBeLessThan(20);
  });

  it('a listener whose clock is 10 s ahead of the database does not busy-loop before a retry', async () => {
    const ch = channel('skewed', v.object({ n: v.number() }));
    const { counter, db } = countingClient();
    await enqueue(ch.name, 1);
    await t.sql`UPDATE pgpubsub.notifications SET run_at = now() + interval '4 s' WHERE channel = ${ch.name}`;
    let handled = 0;
    const listener = createListener(db, { pollIntervalMs: false, idleWaitMs: 50 }).on(ch, () => {
      handled++;
    });
    running.push(listener);
    const realNow = Date.now;
    Date.now = () => realNow() + 10_000;
    try {
      await listener.start();
      await queriesDuring(counter, 300); // the first claim and the idle protocol
      // Busy-looping until the database's clock catches up would send hundreds (see above).
      expect(await queriesDuring(counter, 2000)).toBeLessThan(20);
      await waitFor(() => handled === 1, { timeoutMs: 15_000, what: 'the scheduled notification' });
    } finally {
      Date.now = realNow;
    }
  }, 30_000);
});

describe('idle_in_transaction_session_timeout (issue 14, item 4)', () => {
  it('a handler slower than idle_in_transaction_session_timeout ends as a dead letter saying so', async () => {
    const ch = channel('slow_idle_tx', v.object({ n: v.number() }));
    await t.sql.unsafe(`ALTER DATABASE "${t.name}" SET idle_in_transaction_session_timeout = '300ms'`);
    try {
      const db = drizzle(t.client({ max: 6 }));
      const errors: unknown[] = [];
      const listener = createListener(db, { maxAttempts: 2, backoff: () => 0, pollIntervalMs: 500 }).on(
        ch,
        async () => {
          await new Promise((resolve) => setTimeout(resolve, 1000));
        },
      );
      listener.events.on('error', ({ error }) => void errors.push(error));
      running.push(listener);
      await enqueue(ch.name, 1);
      await listener.start();
      const row = await waitFor(
        async () => {
          const [r] = await t.sql`SELECT status, attempts, last_error FROM pgpubsub.notifications
            WHERE channel = ${ch.name} AND status = 'failed'`;
          return r;
        },
        { timeoutMs: 20_000, what: 'the slow notification to be dead-lettered' },
      );
      expect(row.attempts).toBe(2);
      expect(row.last_error).toMatch(
        /the claim's session was closed by the server after \d+ ms idle in transaction \(idle_in_transaction_session_timeout\); make the handler faster, raise the timeout, or use timeoutMs/i,
      );
    } finally {
      await t.sql.unsafe(`ALTER DATABASE "${t.name}" RESET idle_in_transaction_session_timeout`);
    }
  }, 40_000);
});

describe('handler errors and clear messages (issue 14, minor items)', () => {
  /** Drains 2 notifications whose first handler throws `thrown`; returns its stored last_error. */
  async function storedError(name: string, thrown: unknown): Promise<string> {
    const ch = channel(name, v.object({ n: v.number() }));
    const listener = createListener(t.db, { maxAttempts: 5 }).on(ch, (e) => {
      if (e.payload.n === 1) throw thrown;
    });
    await enqueue(ch.name, 2);
    const summary = await listener.drain();
    // The failure did not roll back the batch: the other notification was handled.
    expect(summary).toMatchObject({ processed: 1, retried: 1 });
    const [row] = await t.sql`SELECT last_error FROM pgpubsub.notifications WHERE channel = ${ch.name}`;
    return row?.last_error as string;
  }

  it('stores a handler error containing NUL, with U+FFFD in its place', async () => {
    const text = await storedError('err_nul', new Error('bad\0byte'));
    expect(text).toMatch(/^Error: bad\uFFFDbyte/);
  });

  it('cuts a long handler error on a code point boundary', async () => {
    const text = await storedError('err_surrogate', new Error(`${'a'.repeat(3992)}😀😀😀`));
    expect(text.startsWith(`Error: ${'a'.repeat(3992)}`)).toBe(true);
    expect(text.isWellFormed()).toBe(true);
    expect(text.endsWith('…')).toBe(true);
  });

  it('names a thrown undefined', async () => {
    expect(await storedError('err_undefined', undefined)).toBe('handler threw undefined');
  });

  it('refuses NUL in withContext() values, naming the field', async () => {
    const error = await t.db
      .transaction(async (tx) => withContext(tx, { tenant: 'a\0b' }))
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(isPgPubSubError(error, 'INVALID_CONTEXT')).toBe(true);
    expect((error as Error).message).toMatch(/Field "tenant".*NUL/);
  });

  it('refuses NUL in the filter option, naming the field', () => {
    expect(() => createListener(t.db, { filter: { tenant: 'a\0b' } })).toThrow(
      /`filter` cannot be used: Field "tenant".*NUL/,
    );
  });

  it('refuses a payload over 256 MB with PAYLOAD_TOO_LARGE', async () => {
    const ch = channel('huge', v.object({ s: v.string() }));
    const error = await t.db
      .transaction(async (tx) => notify(tx, ch, { s: 'a'.repeat(268_435_456) }))
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(isPgPubSubError(error, 'PAYLOAD_TOO_LARGE')).toBe(true);
    expect((error as Error).message).toMatch(/at most 268435455 bytes.*send its id/);
  }, 60_000);
});
