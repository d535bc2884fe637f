/**
 * Reproduction: a claim whose connection is cut while its handler runs never finishes, and its
 * channel is never claimed again by that listener (inflight stays 1), while the sweep keeps running.
 * claim.ts then sends ROLLBACK on the dead *reserved* connection; postgres.js 3.4.9 leaves such a
 * connection with a stale write timer (porsager/postgres#1208), so the ROLLBACK is never sent and
 * never answered, and `await cleanup` waits forever. In the chaos run (`--faults blackhole`) all
 * four listener processes end up like this and the queue never drains.
 *
 *   node --import jiti/register chaos/repro/claim-stuck-after-reset.ts   # prints STUCK or OK
 */
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { channel } from '../../src/channel.ts';
import { createListener } from '../../src/listener.ts';
import { storageMigrationSql } from '../../src/notifications.ts';
import { notify } from '../../src/notify.ts';
import { startPg } from '../../tools/embedded-pg.ts';
import { ChaosProxy } from '../proxy.ts';

// The same defect sometimes crashes instead (porsager/postgres#1154): count it and carry on.
let crashes = 0;
process.on('uncaughtException', (error) => {
  crashes++;
  console.log(`uncaught (postgres.js): ${error.message}`);
});

const server = await startPg(undefined, { max_connections: '200' });
const direct = postgres(server.url, { onnotice: () => {} });
const proxy = await ChaosProxy.start('127.0.0.1', server.port);
const viaProxy = postgres(`postgres://postgres:postgres@127.0.0.1:${proxy.port}/postgres`, {
  onnotice: () => {},
  max: 4,
  connect_timeout: 3,
});
let exitCode = 0;
try {
  for (const s of storageMigrationSql()) await direct.unsafe(s);
  await direct.unsafe('CREATE TABLE done (n int)');
  const ch = channel('stuck', v.object({ n: v.number() }));
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const handled: number[] = [];
  const listener = createListener(drizzle(viaProxy), { pollIntervalMs: 1000 }).on(ch, async (e, tx) => {
    if (e.payload.n === 1) await gate;
    await tx.execute(sql`INSERT INTO done VALUES (${e.payload.n})`);
    handled.push(e.payload.n);
  });
  const errors: string[] = [];
  listener.events.on('error', (e) => errors.push(`${e.during}: ${(e.error as Error).message}`));
  await listener.start();
  const db = drizzle(direct);
  await notify(db, ch, { n: 1 });
  await new Promise((resolve) => setTimeout(resolve, 500)); // the claim is now waiting in the handler
  console.log(`cut ${proxy.resetAll()} connections while the handler runs`);
  release();
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const n of [2, 3, 4]) await notify(db, ch, { n });
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  const [left] = await direct`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
  const l = listener as any;
  const state = l.scheduler?.states?.get('stuck');
  console.log({
    handled,
    pending: left!.n,
    inflight: state?.inflight,
    errors: [...new Set(errors)],
    crashes,
  });
  const ok = left!.n === 0;
  console.log(
    ok ? 'OK: the listener claimed the channel again' : 'STUCK: 10 s later the channel is still not claimed',
  );
  exitCode = ok ? 0 : 1;
  await Promise.race([listener.stop({ timeoutMs: 500 }), new Promise((r) => setTimeout(r, 5000))]);
} finally {
  await viaProxy.end({ timeout: 1 }).catch(() => {});
  await proxy.close();
  await direct.end();
  await server.stop();
}
process.exit(exitCode);
