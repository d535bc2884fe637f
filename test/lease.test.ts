import * as v from 'valibot';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase, withAppName } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';
import { workerPool } from './support/workers.ts';

const jobs = channel('jobs', v.object({ n: v.number() }));

const t = useTestDatabase([
  'CREATE TABLE lease_effects (notification_id bigint NOT NULL, worker text NOT NULL, attempt int NOT NULL, key text NOT NULL)',
]);
const workers = workerPool('lease-worker.ts', () => t.url);

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 2000 })));
  await workers.killAll();
  await t.sql`TRUNCATE lease_effects, pgpubsub.notifications RESTART IDENTITY`;
  await t.sql`DELETE FROM pgpubsub.wakeups`;
});
afterAll(() => workers.killAll());

async function enqueue(n = 1): Promise<string[]> {
  const rows = await t.sql<{ id: string }[]>`INSERT INTO pgpubsub.notifications (channel, payload)
    SELECT 'jobs', jsonb_build_object('n', g) FROM generate_series(1, ${n}::int) g RETURNING id::text`;
  return rows.map((r) => r.id);
}

async function row(id: string) {
  const [r] = await t.sql<
    { attempts: number; status: string; lease_ms: number; last_error: string | null }[]
  >`
    SELECT attempts, status, last_error,
      (extract(epoch FROM run_at - now()) * 1000)::float8 AS lease_ms
    FROM pgpubsub.notifications WHERE id = ${id}::bigint`;
  return r;
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/** Sessions of the client named `app` that sit in an open transaction between statements. */
async function openTransactions(app: string): Promise<number> {
  const [r] = await t.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE application_name = ${app} AND state IN ('idle in transaction', 'idle in transaction (aborted)')`;
  return r!.n;
}

describe('lease handlers', () => {
  it('run outside any transaction with db, a committed lease and a stable idempotency key', async () => {
    const db = t.drizzle(4, {}, withAppName(t.url, 'lease-listener'));
    const [id] = await enqueue();
    const g = gate();
    let seen: { key: string; attempt: number; isDb: boolean } | undefined;
    const l = createListener(db, { pollIntervalMs: false }).on(
      jobs,
      async (event, database) => {
        seen = { key: event.idempotencyKey, attempt: event.attempt, isDb: database === db };
        await g.opened;
      },
      { lease: '30s' },
    );
    running.push(l);
    await l.start();
    await waitFor(() => seen, { what: 'the handler to start' });
    expect(seen).toEqual({ key: `jobs:${id}`, attempt: 1, isDb: true });
    // The lease is committed: attempts counted, run_at pushed out by the lease.
    const leased = await row(id!);
    expect(leased!.attempts).toBe(1);
    expect(leased!.lease_ms).toBeGreaterThan(20_000);
    // While the handler awaits, no session of the listener holds a transaction open.
    for (let i = 0; i < 10; i++) expect(await openTransactions('lease-listener')).toBe(0);
    g.open();
    await waitFor(async () => (await row(id!)) === undefined, { what: 'the notification deleted' });
  });

  it('(control) a transactional handler does hold its claim transaction open while it awaits', async () => {
    const db = t.drizzle(4, {}, withAppName(t.url, 'tx-listener'));
    await enqueue();
    const g = gate();
    let started = false;
    const l = createListener(db, { pollIntervalMs: false }).on(jobs, async () => {
      started = true;
      await g.opened;
    });
    running.push(l);
    await l.start();
    await waitFor(() => started, { what: 'the handler to start' });
    await waitFor(async () => (await openTransactions('tx-listener')) === 1, { what: 'the open claim' });
    g.open();
    await waitFor(async () => (await countNotifications(t.sql)).pending === 0, { what: 'handled' });
  });

  it('renews the lease with a heartbeat while the handler runs', async () => {
    const [id] = await enqueue();
    const g = gate();
    let started = false;
    const l = createListener(t.db, { pollIntervalMs: false }).on(
      jobs,
      async () => {
        started = true;
        await g.opened;
      },
      { lease: 900 },
    );
    running.push(l);
    await l.start();
    await waitFor(() => started, { what: 'the handler to start' });
    const [first] = await t.sql<
      { run_at: string }[]
    >`SELECT run_at::text FROM pgpubsub.notifications WHERE id = ${id!}::bigint`;
    await waitFor(
      async () => {
        const [now] = await t.sql<{ later: boolean }[]>`
          SELECT run_at > ${first!.run_at}::timestamptz AS later FROM pgpubsub.notifications WHERE id = ${id!}::bigint`;
        return now?.later;
      },
      { what: 'the heartbeat to extend the lease', timeoutMs: 30_000 },
    );
    expect((await row(id!))!.attempts).toBe(1);
    g.open();
    await waitFor(async () => (await row(id!)) === undefined, { what: 'the notification deleted' });
  });

  it('records a failed attempt once (retry, then dead letter) through the normal path', async () => {
    const [id] = await enqueue();
    const attempts: number[] = [];
    const l = createListener(t.db, { maxAttempts: 2, backoff: () => 0 }).on(
      jobs,
      async (event) => {
        attempts.push(event.attempt);
        throw new Error(`upstream 503 on attempt ${event.attempt}`);
      },
      { lease: '1m' },
    );
    const summary = await l.drain();
    expect(summary).toMatchObject({ processed: 0, retried: 1, dead: 1 });
    expect(attempts).toEqual([1, 2]);
    const r = await row(id!);
    expect(r).toMatchObject({ attempts: 2, status: 'failed' });
    expect(r!.last_error).toContain('upstream 503 on attempt 2');
  });

  it('dead-letters a notification whose last attempt lease ran out, without running it again', async () => {
    const [id] = await enqueue();
    await t.sql`UPDATE pgpubsub.notifications SET attempts = 3 WHERE id = ${id!}::bigint`;
    let calls = 0;
    const l = createListener(t.db, { maxAttempts: 3 }).on(
      jobs,
      () => {
        calls++;
      },
      { lease: '1m' },
    );
    expect(await l.drain()).toMatchObject({ processed: 0, dead: 1 });
    expect(calls).toBe(0);
    const r = await row(id!);
    expect(r).toMatchObject({ attempts: 3, status: 'failed' });
    expect(r!.last_error).toContain('The lease of the last attempt (3 of 3)');
  });

  it('does not complete an attempt whose lease was taken over (fencing by attempts)', async () => {
    const [id] = await enqueue();
    const g = gate();
    let started = false;
    const errors: string[] = [];
    const l = createListener(t.db, { pollIntervalMs: false }).on(
      jobs,
      async () => {
        started = true;
        await g.opened;
      },
      { lease: '1m' },
    );
    l.events.on('error', ({ error }) => errors.push((error as Error).message));
    running.push(l);
    await l.start();
    await waitFor(() => started, { what: 'the handler to start' });
    // What a takeover does: the next claim counts another attempt.
    await t.sql`UPDATE pgpubsub.notifications SET attempts = attempts + 1 WHERE id = ${id!}::bigint`;
    g.open();
    await waitFor(() => errors.some((m) => m.includes('ran out before the handler finished')), {
      what: 'the LEASE_LOST report',
    });
    expect((await row(id!))!.attempts).toBe(2);
  });

  it('stop() gives in-flight lease handlers the timeout, then leaves the lease to run out', async () => {
    const [id] = await enqueue();
    let signal: AbortSignal | undefined;
    const l = createListener(t.db, { pollIntervalMs: false }).on(
      jobs,
      (event) => {
        signal = event.signal;
        return new Promise(() => {});
      },
      { lease: '1m' },
    );
    await l.start();
    await waitFor(() => signal, { what: 'the handler to start' });
    const stopped = new Promise<number>((resolve) => l.events.on('stopped', (e) => resolve(e.aborted)));
    await l.stop({ timeoutMs: 100 });
    expect(await stopped).toBe(1);
    expect(signal!.aborted).toBe(true);
    // Nothing lost: still pending, leased to the attempt that was running.
    expect(await row(id!)).toMatchObject({ attempts: 1, status: 'pending' });
  });

  it('is taken over by another process after its process was SIGKILLed and the lease ran out', async () => {
    const [id] = await enqueue();
    const a = await workers.start('a', { HANG: '1', LEASE_MS: '1500' });
    await waitFor(async () => (await t.sql`SELECT 1 FROM lease_effects WHERE worker = 'a'`).length === 1, {
      what: 'worker a to start the handler',
      timeoutMs: 30_000,
    });
    a.kill('SIGKILL');
    await workers.exited(a);
    await workers.start('b', { LEASE_MS: '1500' });
    await waitFor(async () => (await row(id!)) === undefined, {
      what: 'worker b to take over and complete',
      timeoutMs: 30_000,
    });
    const effects = await t.sql<{ worker: string; attempt: number; key: string }[]>`
      SELECT worker, attempt, key FROM lease_effects ORDER BY attempt`;
    expect(effects).toEqual([
      { worker: 'a', attempt: 1, key: `jobs:${id}` },
      { worker: 'b', attempt: 2, key: `jobs:${id}` },
    ]);
  });
});
