/**
 * A channel name containing the `$pgpubsub$` dollar tag against the trigger SQL builder: with
 * check_function_bodies = off the rest of the name runs as SQL (drops the canary table) when the
 * function body is delimited by a fixed `$pgpubsub$` tag. Prints whether the canary survived.
 *
 *   node --import jiti/register chaos/repro/channel-name-dollar-quote.ts
 */
import { integer, pgTable, serial } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import { triggerChannel } from '../../src/channel.ts';
import { storageMigrationSql } from '../../src/notifications.ts';
import { createTriggerSql, resolveTriggerSpec } from '../../src/trigger-sql.ts';
import { startChaosPg } from '../pg.ts';

const server = await startChaosPg(undefined);
const sql = postgres(server.url, { onnotice: () => {} });
for (const s of storageMigrationSql()) await sql.unsafe(s);
await sql.unsafe('CREATE TABLE canary (id int); CREATE TABLE items (id serial primary key, qty int)');
const items = pgTable('items', { id: serial().primaryKey(), qty: integer() });
const name = '$pgpubsub$;DROP TABLE IF EXISTS canary;SELECT $pgpubsub$';
console.log('bytes', Buffer.byteLength(name));
const ch = triggerChannel(items, { on: ['insert'], name });
const stmts = createTriggerSql(resolveTriggerSpec(ch));

for (const cfb of ['on', 'off']) {
  try {
    await sql.unsafe(`SET check_function_bodies = ${cfb}`);
    for (const s of stmts) await sql.unsafe(s);
    console.log(cfb, 'installed');
  } catch (e) {
    console.log(cfb, 'error:', (e as Error).message);
  }
  console.log(cfb, 'canary exists:', (await sql`select to_regclass('canary') is not null as ok`)[0]!.ok);
}
await sql.end();
await server.stop();
