/**
 * Reproduction: a listener whose postgres.js client has `fetch_types: false` cannot complete a single
 * claim. claim.ts deletes handled rows with `"id" = ANY($1::bigint[])` and passes a JS array; without
 * the array-type lookup postgres.js serializes it as a scalar, PostgreSQL answers `malformed array
 * literal`, the claim transaction rolls back, and careful mode then charges an attempt to each
 * innocent notification until it is dead-lettered.
 *
 *   node --import jiti/register chaos/repro/fetch-types-false.ts
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { channel } from '../../src/channel.ts';
import { createListener } from '../../src/listener.ts';
import { storageMigrationSql } from '../../src/notifications.ts';
import { notify } from '../../src/notify.ts';
import { startChaosPg } from '../pg.ts';

const server = await startChaosPg(process.env.DATABASE_URL);
const sql = postgres(server.url, { fetch_types: false, onnotice: () => {} });
try {
  for (const s of storageMigrationSql()) await sql.unsafe(s);
  const ch = channel('repro_fetch_types', v.object({ n: v.number() }));
  const db = drizzle(sql);
  await notify(db, ch, { n: 1 });
  const errors: string[] = [];
  const listener = createListener(db, { maxAttempts: 3, backoff: () => 0 }).on(ch, () => {});
  listener.events.on('error', (e) => errors.push(String((e.error as Error).message)));
  const summary = await listener.drain().catch((error) => `drain threw: ${error.message}`);
  const rows =
    await sql`SELECT status, attempts, left(last_error, 60) AS e FROM pgpubsub.notifications WHERE channel = ${ch.name}`;
  console.log({ summary, errors: [...new Set(errors)], rows });
  const ok = typeof summary === 'object' && summary.processed === 1 && rows.length === 0;
  console.log(ok ? 'OK: processed' : 'BUG: the notification was not processed');
  process.exitCode = ok ? 0 : 1;
} finally {
  await sql.end();
  await server.stop();
}
