/**
 * A listener process for the "cut off mid-claim" test (test/chaos.test.ts): it claims a batch, tells
 * the parent, and waits for the parent's go before its handler writes, so the parent can black-hole
 * its connections in between. Runs in its own process because the connection loss that follows can
 * crash postgres.js 3.4.9 (porsager/postgres#1154), which must not take the test runner down.
 *
 * Environment: CUTOFF_URL (through the proxy), CUTOFF_CHANNEL, CUTOFF_IDLE_TX_MS.
 */
import { sql } from 'drizzle-orm';
import * as v from 'valibot';
import { channel, createListener } from '../src/index.ts';
import { fixtureDb } from '../test/fixtures/driver-db.ts';

const { db } = fixtureDb(process.env.CUTOFF_URL!, {
  max: 2,
  idleInTransactionMs: Number(process.env.CUTOFF_IDLE_TX_MS ?? 1000),
});
const ch = channel(process.env.CUTOFF_CHANNEL!, v.object({ n: v.number() }));
let release = () => {};
const go = new Promise<void>((resolve) => {
  release = resolve;
});
process.on('message', (message) => {
  if (message === 'go') release();
});
process.on('disconnect', () => process.exit(0));

const listener = createListener(db, { pollIntervalMs: false }).on(ch, async (e, tx) => {
  process.send?.('claimed');
  await go;
  await tx.execute(sql`INSERT INTO done VALUES (${e.payload.n}, 'a')`);
});
await listener.start();
process.send?.('ready');
