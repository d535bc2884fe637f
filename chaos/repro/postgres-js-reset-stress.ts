/**
 * postgres.js 3.4.9 under connection resets, without drizzle-pgpubsub: 4 loops of small transactions
 * through the chaos proxy, which resets every connection every 50–350 ms for SECS seconds (default 40).
 * Shows (1) the uncatchable `nextWrite` TypeError (porsager/postgres#1154; counted here instead of
 * crashing) and (2) operations that hang for 15 s and more on a pooled connection left with a stale
 * write timer after a reset (porsager/postgres#1208, PR #1209).
 *
 *   SECS=40 node --import jiti/register chaos/repro/postgres-js-reset-stress.ts
 */
import postgres from 'postgres';
import { startPg } from '../../tools/embedded-pg.ts';
import { ChaosProxy } from '../proxy.ts';

process.on('unhandledRejection', (e) => console.log('UNHANDLED', (e as Error).message));
let crashes = 0;
process.on('uncaughtException', (e) => {
  crashes++;
  if (crashes < 3) console.log('UNCAUGHT', e.message);
});
const server = await startPg(undefined, { max_connections: '200' });
const proxy = await ChaosProxy.start('127.0.0.1', server.port);
const sql = postgres(`postgres://postgres:postgres@127.0.0.1:${proxy.port}/postgres`, {
  max: 4,
  connect_timeout: 3,
  keep_alive: 2,
  idle_timeout: 10,
  max_lifetime: 120,
  fetch_types: false,
  onnotice: () => {},
});
let ok = 0,
  failed = 0,
  hung = 0,
  stop = false;
const until = Date.now() + Number(process.env.SECS ?? 40) * 1000;
async function loop(i: number) {
  while (!stop) {
    const started = Date.now();
    let done = false;
    const watchdog = setTimeout(() => {
      if (!done) {
        hung++;
        console.log(`loop ${i}: op hung > 15 s`);
      }
    }, 15000);
    try {
      await sql.begin(async (tx) => {
        await tx`select 1`;
        await tx`select pg_sleep(0.002)`;
        await tx.unsafe('savepoint a');
        await tx`select 2`;
      });
      ok++;
    } catch {
      failed++;
    }
    done = true;
    clearTimeout(watchdog);
    if (Date.now() - started > 15000) {
      console.log(`loop ${i}: op finished after ${Date.now() - started} ms`);
    }
  }
}
const loops = [0, 1, 2, 3].map(loop);
while (Date.now() < until) {
  await new Promise((r) => setTimeout(r, 50 + Math.random() * 300));
  proxy.resetAll();
}
console.log(`faults over; ok ${ok} failed ${failed} hung ${hung}`);
await new Promise((r) => setTimeout(r, 20000));
console.log(`after 20 s: ok ${ok} failed ${failed} hung ${hung} crashes ${crashes}`);
stop = true;
await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 5000))]);
await proxy.close();
await server.stop();
process.exit(0);
