import type { ChildProcess } from 'node:child_process';
import { sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withoutWakeup } from '../src/notify.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { itemEvents } from './fixtures/effect-channels.ts';
import { useTestDatabase } from './support/db.ts';
import { POSTGRES_JS_MAJOR } from './support/driver-version.ts';
import { waitFor } from './support/wait-for.ts';
import { workerPool } from './support/workers.ts';

// What writers pay in each state of the listeners: a NOTIFY (and the global lock it takes at commit)
// only while some live listener sleeps. Listeners run as child processes, without safety sweep.
const t = useTestDatabase([
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)',
  'CREATE TABLE effects (notification_id bigint NOT NULL, worker text NOT NULL)',
  ...createTriggerSql(resolveTriggerSpec(itemEvents)),
]);

const { start: startWorker, exited, killAll } = workerPool('wake-worker.ts', () => t.url);
async function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  child.kill(signal);
  await exited(child);
}

/** Counts the NOTIFYs writers send on `items`, on a LISTEN connection of its own. */
let counter: postgres.Sql;
let notifies = 0;
let sentinels = 0;
beforeAll(async () => {
  counter = t.client({ max: 1 });
  await counter.listen('items', (payload) => {
    if (payload === 'sentinel') sentinels++;
    else notifies++;
  });
});
afterEach(killAll);

/** NOTIFYs sent by `writes` single-row INSERT transactions; delivery is in commit order, so a sentinel sent after them closes the count. */
async function notifiesOf(writes: number, isolation = 'read committed'): Promise<number> {
  const before = notifies;
  const seen = sentinels;
  for (let i = 0; i < writes; i++) {
    await t.sql.begin(`isolation level ${isolation}`, (tx) => tx`INSERT INTO items (name) VALUES ('w')`);
  }
  await t.sql`SELECT pg_notify('items', 'sentinel')`;
  await waitFor(() => sentinels > seen, { what: 'the sentinel NOTIFY' });
  return notifies - before;
}

const idleFlags = async () =>
  (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups WHERE channel = 'items' AND idle`)[0]!
    .n as number;
const pending = async () =>
  (await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`)[0]!.n as number;
const waitIdle = (flags = 1) =>
  waitFor(async () => (await idleFlags()) >= flags && (await pending()) === 0, {
    timeoutMs: 20_000,
    what: `${flags} idle listener(s) with nothing pending`,
  });

/** LISTEN sessions holding a wake-up lock (one per live listener) in this test's database (other test files run listeners too). */
const sessionLocks = async () =>
  (
    await t.sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
      AND classid = hashtext('drizzle-pgpubsub wakeups "pgpubsub"')::oid AND objid <> 0 AND mode = 'ExclusiveLock'
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
  )[0]!.n as number;

const effects = async () => (await t.sql`SELECT count(*)::int AS n FROM effects`)[0]!.n as number;

/** One INSERT, and how long until a listener has handled it (no sweep runs: only a NOTIFY wakes it). */
async function wakeLatency(): Promise<number> {
  const before = await effects();
  const start = Date.now();
  await t.sql`INSERT INTO items (name) VALUES ('wake')`;
  await waitFor(async () => (await effects()) > before, {
    timeoutMs: 20_000,
    what: 'the idle listener to handle a new row',
  });
  return Date.now() - start;
}

describe('wake-up flags follow live listener sessions', () => {
  it('a live idle listener is woken; after stop() writers send no NOTIFY and no flag is left', async () => {
    const a = await startWorker('a');
    await waitIdle();
    await wakeLatency(); // no sweep runs: only the NOTIFY can wake it
    await waitIdle();
    expect(await notifiesOf(3)).toBeGreaterThan(0);
    // REPEATABLE READ producers NOTIFY while some listener lives.
    await waitIdle();
    expect(await notifiesOf(1, 'repeatable read')).toBe(1);
    await waitIdle();
    await kill(a, 'SIGTERM');
    expect(a.exitCode).toBe(0);
    expect((await t.sql`SELECT count(*)::int AS n FROM pgpubsub.wakeups`)[0]!.n).toBe(0);
    expect(await notifiesOf(200)).toBe(0);
    expect(await notifiesOf(50, 'repeatable read')).toBe(0);
    expect(await notifiesOf(50, 'serializable')).toBe(0);
  }, 60_000);

  it('after SIGKILL of the only listener writers send no NOTIFY; the next listener drops its flags', async () => {
    const a = await startWorker('a');
    await waitIdle();
    await kill(a, 'SIGKILL');
    // The dead session's flag is still there, and costs a try-lock, not a NOTIFY.
    await waitFor(async () => (await sessionLocks()) === 0, {
      what: 'the killed listener’s LISTEN session to end',
    });
    expect(await idleFlags()).toBe(1);
    expect(await notifiesOf(200)).toBe(0);
    expect(await notifiesOf(50, 'repeatable read')).toBe(0);
    const b = await startWorker('b');
    await waitIdle();
    // b handled the backlog, pruned a's flag, and is woken as usual.
    expect(await idleFlags()).toBe(1);
    await wakeLatency(); // no sweep runs: only the NOTIFY can wake it
    await kill(b, 'SIGTERM');
  }, 60_000);

  // postgres.js 3 may crash the listener process when its sessions are terminated (porsager/postgres#1154).
  it.skipIf(POSTGRES_JS_MAJOR < 4)(
    'after every session is gone (as after a PostgreSQL restart) writers send no NOTIFY; a listener that reconnects is woken again',
    async () => {
      // The harness's PostgreSQL is shared and not restarted here: every backend of the listener is
      // terminated while its process is frozen, which leaves the table as a restart would (flags set,
      // no session holding their locks).
      const a = await startWorker('a');
      await waitIdle();
      a.kill('SIGSTOP');
      try {
        const gone = await t.sql`SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`;
        const pids = gone.map((r) => r.pid as number);
        await waitFor(
          async () =>
            (await t.sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY(${pids})`)[0]!.n ===
            0,
          { what: 'every other session to end' },
        );
        // The counter's LISTEN session was terminated too: postgres.js listens again on reconnect.
        await waitFor(
          async () => {
            await t.sql`SELECT pg_notify('items', 'sentinel')`;
            const seen = sentinels;
            await new Promise((resolve) => setTimeout(resolve, 50));
            return sentinels > seen;
          },
          { what: 'the counter to listen again' },
        );
        expect(await idleFlags()).toBe(1);
        expect(await notifiesOf(200)).toBe(0);
      } finally {
        a.kill('SIGCONT');
      }
      // Back: it reconnects, takes a new lock, sweeps, and sleeps with a live flag again.
      await waitFor(async () => (await pending()) === 0, {
        timeoutMs: 20_000,
        what: 'the reconnected listener to sweep',
      });
      await waitIdle();
      await wakeLatency(); // no sweep runs: only the NOTIFY can wake it
      await kill(a, 'SIGTERM');
    },
    60_000,
  );

  it('two listeners, one killed: the other is still woken', async () => {
    const [a, b] = await Promise.all([startWorker('a'), startWorker('b')]);
    await waitIdle(2);
    await kill(a!, 'SIGKILL');
    await waitIdle(1);
    await wakeLatency(); // no sweep runs: only the NOTIFY can wake it
    const n =
      await t.sql`SELECT DISTINCT worker FROM effects WHERE notification_id > (SELECT max(notification_id) - 1 FROM effects)`;
    expect(n.map((r) => r.worker)).toEqual(['b']);
    await kill(b!, 'SIGTERM');
  }, 60_000);
});

describe('slow producers (issue 14, item 6)', () => {
  it('a producer that wrote while the listener was busy and commits after idleWaitMs is still announced, with no sweep', async () => {
    const a = await startWorker('a', { IDLE_WAIT_MS: '200' });
    await waitIdle();
    const before = await effects();
    await t.sql`INSERT INTO items (name) VALUES ('slow')`;
    // The NOTIFY made it busy: its flag is clear while the slow handler (1 s) runs.
    await waitFor(async () => (await idleFlags()) === 0, { what: 'the listener to clear its flag' });
    const producer = await t.sql.reserve();
    try {
      await producer`BEGIN`;
      // Reads the clear flag: this transaction will not NOTIFY.
      await producer`INSERT INTO items (name) VALUES ('late')`;
      // The listener finishes the slow row, sets its flag, waits 200 ms for this producer, gives up.
      await waitFor(async () => (await effects()) > before && (await idleFlags()) === 1, {
        what: 'the listener to handle the slow row and go idle',
      });
      const idleSince = Date.now();
      await waitFor(() => Date.now() - idleSince > 1000, { what: 'five idle waits to pass' });
      await producer`COMMIT`;
    } finally {
      producer.release();
    }
    // Before the watch: never (no sweep, no NOTIFY). Now: within the watch's backoff (≤ 5 s).
    await waitFor(async () => (await effects()) >= before + 2 && (await pending()) === 0, {
      timeoutMs: 20_000,
      what: 'the late producer’s row to be handled',
    });
    await kill(a, 'SIGTERM');
  }, 60_000);
});

describe('two-phase commit (issue 14, item 7)', () => {
  const preparedTransactions = async () =>
    Number((await t.sql`SHOW max_prepared_transactions`)[0]!.max_prepared_transactions);
  async function prepareAndCommit(setting: string | null): Promise<void> {
    const conn = await t.sql.reserve();
    const gid = `pgpubsub-test-${Math.random().toString(36).slice(2)}`;
    try {
      await conn`BEGIN`;
      if (setting !== null) await conn.unsafe(`SET LOCAL pgpubsub.wake = '${setting}'`);
      await conn`INSERT INTO items (name) VALUES ('2pc')`;
      try {
        await conn.unsafe(`PREPARE TRANSACTION '${gid}'`);
      } catch (error) {
        await conn`ROLLBACK`.catch(() => {});
        throw error;
      }
    } finally {
      conn.release();
    }
    await t.sql.unsafe(`COMMIT PREPARED '${gid}'`);
  }

  it('PREPARE TRANSACTION works with no live listener, with no setting at all', async (ctx) => {
    if ((await preparedTransactions()) === 0) {
      ctx.skip('max_prepared_transactions is 0 on this server (the embedded test server sets 10)');
    }
    const a = await startWorker('a');
    await waitIdle();
    await kill(a, 'SIGKILL'); // its flag stays, its session is gone
    await waitFor(async () => (await sessionLocks()) === 0, { what: 'the killed session to end' });
    expect(await idleFlags()).toBe(1);
    await prepareAndCommit(null);
    const b = await startWorker('b');
    await waitIdle();
    await kill(b, 'SIGTERM'); // stop() deletes its flag
    expect(await idleFlags()).toBe(0);
    await prepareAndCommit(null);
    expect(await pending()).toBe(1);
    await t.sql`DELETE FROM pgpubsub.notifications`;
  }, 60_000);

  it("with a live idle listener: PREPARE fails on the wake-up NOTIFY, works with pgpubsub.wake = 'off'", async (ctx) => {
    if ((await preparedTransactions()) === 0) {
      ctx.skip('max_prepared_transactions is 0 on this server (the embedded test server sets 10)');
    }
    const a = await startWorker('a');
    await waitIdle();
    await expect(prepareAndCommit(null)).rejects.toThrow(/NOTIFY/);
    await prepareAndCommit('off');
    expect(await pending()).toBe(1);
    // No NOTIFY was sent: the row waits for the next wake-up (here: no sweep), which takes it too.
    await wakeLatency();
    await waitFor(async () => (await pending()) === 0, { what: 'both rows to be handled' });
    await kill(a, 'SIGTERM');
  }, 60_000);

  it('withoutWakeup(tx) sends no NOTIFY to a live idle listener', async () => {
    const a = await startWorker('a');
    await waitIdle();
    const before = notifies;
    const seen = sentinels;
    await t.db.transaction(async (tx) => {
      await withoutWakeup(tx);
      await tx.execute(sql`INSERT INTO items (name) VALUES ('quiet')`);
    });
    await t.sql`SELECT pg_notify('items', 'sentinel')`;
    await waitFor(() => sentinels > seen, { what: 'the sentinel NOTIFY' });
    expect(notifies - before).toBe(0);
    await wakeLatency();
    await waitFor(async () => (await pending()) === 0, { what: 'both rows to be handled' });
    await kill(a, 'SIGTERM');
  }, 60_000);
});
