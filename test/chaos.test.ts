import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql as dsql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { runChaos } from '../chaos/chaos.ts';
import { ChaosProxy } from '../chaos/proxy.ts';
import { formatReport } from '../chaos/report.ts';
import { channel } from '../src/channel.ts';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { closeDb, useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase(['CREATE TABLE done (n int NOT NULL, by text NOT NULL)']);

/** A proxy in front of this file's database and a database (on the test driver) that goes through it. */
async function proxied(max = 2) {
  const url = new URL(t.url);
  const proxy = await ChaosProxy.start(url.hostname, Number(url.port));
  url.host = `127.0.0.1:${proxy.port}`;
  const db = t.drizzle(max, {}, url.toString());
  return { proxy, db, close: () => closeDb(db) };
}

// Deadlines fit a loaded 2-core machine (test processes, embedded servers and jiti start-ups compete
// for the CPUs): every wait is on a condition, so a generous deadline costs nothing when things are
// fast, and only a real hang reaches it. START: a server or a listener process starting.
const START = 60_000;

describe('chaos', () => {
  // A short `npm run chaos`: its own embedded PostgreSQL (so it can restart it), 4 listener processes,
  // faults every second. The full run is `npm run chaos` (20,000 notifications).
  it('delivers every committed notification exactly once through kills, terminations, resets, black holes and a restart', async () => {
    const report = await runChaos({
      notifications: 1200,
      durationMs: 10_000,
      seed: 424242,
      drainTimeoutMs: 45_000,
      stopTimeoutMs: 10_000,
      log: () => {},
    });
    console.log(formatReport(report));
    expect(report.violations).toEqual([]);
    expect(report.notifications).toBeGreaterThanOrEqual(1200);
    expect(report.effects).toBe(report.notifications);
    expect(report.faults.kill).toBeGreaterThanOrEqual(8);
    expect(report.faults.restart).toBe(1);
    expect(report.faults['blackhole-heal'] + report.faults['blackhole-sever']).toBe(2);
    // Issue 20: listeners that stopped or died cost writers no NOTIFY.
    expect(report.notifies.afterStop).toEqual({ notifies: 0, writes: 1000, per1000: 0 });
    expect(report.notifies.afterKill).toEqual({ notifies: 0, writes: 1000, per1000: 0 });
    // 10 s of faults, ≤ 45 s of drain, ≤ 2 × 10 s of stops, and the start of a server and 4 workers.
  }, 180_000);

  it('hands the notifications of a listener cut off mid-claim to another listener after idle_in_transaction_session_timeout', async () => {
    // A half-open connection: the server keeps the cut-off claim transaction, and its row locks, until
    // it notices the client is gone (TCP keepalive: 2 h by default). idle_in_transaction_session_timeout
    // on the listener's connections bounds that (docs/guarantees.md). Listener A runs in a child process.
    const ch = channel('cut_off', v.object({ n: v.number() }));
    const url = new URL(t.url);
    const proxy = await ChaosProxy.start(url.hostname, Number(url.port));
    url.host = `127.0.0.1:${proxy.port}`;
    const child = fork(fileURLToPath(new URL('../chaos/cutoff-listener.ts', import.meta.url)), [], {
      execArgv: ['--import', 'jiti/register'],
      env: { ...process.env, CUTOFF_URL: url.toString(), CUTOFF_CHANNEL: ch.name, CUTOFF_IDLE_TX_MS: '1000' },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const messages: string[] = [];
    child.on('message', (m) => void messages.push(String(m)));
    const listenerB = createListener(t.db, { pollIntervalMs: 200 }).on(ch, async (e, tx) => {
      await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n}, 'b')`);
    });
    let hole: Promise<number> | undefined;
    try {
      await waitFor(() => messages.includes('ready'), { timeoutMs: START, what: 'listener A to start' });
      await t.db.transaction(async (tx) => {
        for (const n of [1, 2, 3]) await notify(tx, ch, { n });
      });
      await waitFor(() => messages.includes('claimed'), {
        timeoutMs: 30_000,
        what: 'listener A to claim the batch',
      });
      hole = proxy.blackhole(4000, 'heal');
      child.send('go');
      const started = performance.now();
      await listenerB.start();
      await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
        timeoutMs: 30_000,
        what: 'listener B to take over the batch',
      });
      // B waited for the server to end A's transaction, then took all three.
      expect(performance.now() - started).toBeGreaterThan(500);
      expect(await t.sql`SELECT n, by FROM done ORDER BY n`).toEqual([
        { n: 1, by: 'b' },
        { n: 2, by: 'b' },
        { n: 3, by: 'b' },
      ]);
    } finally {
      await listenerB.stop({ timeoutMs: 1000 });
      await hole;
      // When the proxy heals, A learns its session was terminated; postgres.js 3.4.9 may crash on it
      // (porsager/postgres#1154). Either way A's process ends here.
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.kill('SIGTERM');
      const code = await exited;
      clearTimeout(timer);
      if (/reading 'write'/.test(stderr)) console.log(`listener A crashed in postgres.js (exit ${code})`);
      await proxy.close();
    }
    expect(await t.sql`SELECT count(*)::int AS n FROM done WHERE by = 'a'`).toEqual([{ n: 0 }]);
  }, 150_000);

  it('claims a channel again after the connection of its claim was cut mid-handler', async () => {
    // Regression (fixed in 66bfb5c): the claim's next query on the cut, reserved connection was
    // never sent nor failed by postgres.js, so the claim hung and its channel was never claimed
    // again by that listener (`npm run chaos -- --faults blackhole` never drained).
    const ch = channel('cut_mid_handler', v.object({ n: v.number() }));
    const { proxy, db, close } = await proxied(4);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let waiting = false;
    const listener = createListener(db, { pollIntervalMs: 1000 }).on(ch, async (e, tx) => {
      if (e.payload.n === 1) {
        waiting = true;
        await gate;
      }
      await tx.execute(dsql`INSERT INTO done VALUES (${e.payload.n}, 'cut')`);
    });
    await listener.start();
    try {
      await notify(t.db, ch, { n: 1 });
      await waitFor(() => waiting, { timeoutMs: 30_000, what: 'the handler to wait' });
      expect(proxy.resetAll()).toBeGreaterThan(0);
      release();
      for (const n of [2, 3, 4]) await notify(t.db, ch, { n });
      await waitFor(async () => (await countNotifications(t.sql, ch.name)).pending === 0, {
        timeoutMs: 30_000,
        what: 'the same listener to claim the channel again',
      });
      expect(await t.sql`SELECT n FROM done WHERE by = 'cut' ORDER BY n`).toEqual([
        { n: 1 },
        { n: 2 },
        { n: 3 },
        { n: 4 },
      ]);
    } finally {
      await listener.stop({ timeoutMs: 1000 });
      await close();
      await proxy.close();
    }
  }, 90_000);

  it('works on a postgres.js client with fetch_types: false (array parameters)', async () => {
    // Regression (fixed in f8eb996): arrays bound to `$1::bigint[]` went out as scalars without the
    // array-type lookup ("malformed array literal"), every claim rolled back, and careful mode charged
    // the failure to each innocent notification until it was dead-lettered.
    const ch = channel('fetch_types_off', v.object({ n: v.number() }));
    const client = t.client({ fetch_types: false });
    const db = drizzle({ client });
    await notify(db, ch, { n: 1 });
    const summary = await createListener(db, { maxAttempts: 3, backoff: () => 0 })
      .on(ch, () => {})
      .drain();
    expect(summary).toMatchObject({ processed: 1, dead: 0 });
    expect(await countNotifications(t.sql, ch.name)).toEqual({ pending: 0, failed: 0 });
  });

  it('stop({ timeoutMs }) returns in bounded time when a claim connection is black-holed', async () => {
    // Regression (fixed in f8eb996): a half-open connection (peer gone, no RST) leaves a claim's query
    // unanswered; stop() used to wait for it and for ROLLBACK on the same dead connection, i.e. until
    // TCP gives up (minutes). The proxy would heal after 12 s here; stop() must return well before
    // (then closing the proxy ends the black hole: nothing is left to learn from waiting for it).
    const ch = channel('half_open', v.object({ n: v.number() }));
    const { proxy, db, close } = await proxied();
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = false;
    const listener = createListener(db, { pollIntervalMs: false }).on(ch, async (_e, tx) => {
      started = true;
      await gate;
      await tx.execute(dsql`SELECT 1`);
    });
    await listener.start();
    await notify(t.db, ch, { n: 1 });
    await waitFor(() => started, { timeoutMs: 30_000, what: 'the handler to start' });
    const hole = proxy.blackhole(12_000, 'heal');
    release();
    const t0 = performance.now();
    await listener.stop({ timeoutMs: 300 });
    const elapsed = performance.now() - t0;
    await proxy.close();
    expect(await hole).toBeGreaterThan(0);
    await close();
    expect(elapsed).toBeLessThan(9000);
  }, 60_000);
});
