/**
 * Known bugs, each as a test that fails today and passes once fixed. Kept out of `npm test`
 * (see vitest.config.ts beside this file); described in docs/guarantees.md ("Open issues").
 */
import { sql as dsql } from 'drizzle-orm';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { channel, triggerChannel } from '../../src/channel.ts';
import { isPgPubSubError } from '../../src/errors.ts';
import { createListener } from '../../src/listener.ts';
import { notify } from '../../src/notify.ts';
import { createTriggerSql, resolveTriggerSpec } from '../../src/trigger-sql.ts';
import { countNotifications } from '../../test/support/channels.ts';
import { useTestDatabase } from '../../test/support/db.ts';
import { waitFor } from '../../test/support/wait-for.ts';
import { ChaosProxy } from '../proxy.ts';

const t = useTestDatabase([
  'CREATE TABLE canary (id int PRIMARY KEY)',
  'INSERT INTO canary VALUES (1)',
  'CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty integer NOT NULL)',
]);
const items = pgTable('items', {
  id: serial().primaryKey(),
  name: text().notNull(),
  qty: integer().notNull(),
});

describe('known bugs', () => {
  it('never calls a trigger handler with an op that contradicts its row images', async () => {
    // claim.ts passes op/old/new through unchecked: a row with op NULL, or an insert without a new
    // image, reaches the handler, typed as if it were well-formed.
    const itemEvents = triggerChannel(items, { on: ['insert', 'update', 'delete'], name: 'hostile_ops' });
    await t.sql`
      INSERT INTO pgpubsub.notifications (channel, op, old, new) VALUES
        ('hostile_ops', NULL, NULL, '{"id": 1, "name": "no op", "qty": 1}'),
        ('hostile_ops', 'insert', NULL, NULL),
        ('hostile_ops', 'delete', NULL, '{"id": 1, "name": "delete without old", "qty": 1}'),
        ('hostile_ops', 'update', '{"id": 1, "name": "update without new", "qty": 1}', NULL)`;
    const calls: unknown[] = [];
    const summary = await createListener(t.db, { maxAttempts: 1 })
      .on(itemEvents, (e) => void calls.push([e.op, e.old, e.new]))
      .drain();
    expect(calls).toEqual([]);
    expect(summary).toMatchObject({ processed: 0, dead: 4 });
    expect(await countNotifications(t.sql, 'hostile_ops')).toEqual({ pending: 0, failed: 4 });
  });

  it('keeps a channel name containing the $pgpubsub$ dollar tag inside its string literal', async () => {
    // trigger-sql.ts quotes the channel name as a literal inside a function body delimited by
    // $pgpubsub$; a name containing that tag ends the body early. With check_function_bodies = off
    // (pg_restore, some migration setups) the rest of the name runs as SQL.
    const name = '$pgpubsub$;DROP TABLE IF EXISTS canary;SELECT $pgpubsub$';
    let ch: ReturnType<typeof triggerChannel<typeof items, 'insert'>>;
    try {
      ch = triggerChannel(items, { on: ['insert'], name });
    } catch (error) {
      // Refusing the name is a fix too.
      expect(isPgPubSubError(error, 'INVALID_CHANNEL_NAME')).toBe(true);
      return;
    }
    const conn = await t.sql.reserve();
    try {
      await conn.unsafe('SET check_function_bodies = off');
      for (const statement of createTriggerSql(resolveTriggerSpec(ch))) await conn.unsafe(statement);
    } finally {
      await conn.unsafe('RESET check_function_bodies').catch(() => {});
      conn.release();
    }
    expect(await t.sql`SELECT to_regclass('canary') IS NOT NULL AS ok`).toEqual([{ ok: true }]);
    await t.db.insert(items).values({ name: 'x', qty: 1 });
    expect(await countNotifications(t.sql, name)).toEqual({ pending: 1, failed: 0 });
  });

  it('works on a postgres.js client with fetch_types: false (array parameters)', async () => {
    // claim.ts binds JS arrays to `$1::bigint[]`; without the array-type lookup postgres.js sends
    // them as scalars ("malformed array literal"), every claim rolls back, and careful mode charges
    // the failure to each innocent notification until it is dead-lettered.
    const ch = channel('fetch_types_off', v.object({ n: v.number() }));
    const client = t.client({ fetch_types: false });
    const db = drizzle(client);
    await notify(db, ch, { n: 1 });
    const summary = await createListener(db, { maxAttempts: 3, backoff: () => 0 })
      .on(ch, () => {})
      .drain();
    expect(summary).toMatchObject({ processed: 1, dead: 0 });
    expect(await countNotifications(t.sql, ch.name)).toEqual({ pending: 0, failed: 0 });
  });

  it('stop({ timeoutMs }) returns in bounded time when a claim connection is black-holed', async () => {
    // A half-open connection (peer gone, no RST) leaves a claim's query unanswered. stop() aborts the
    // handler after timeoutMs but then waits for the cancelled query and for ROLLBACK on the same
    // dead connection, i.e. until TCP gives up (minutes). The proxy heals after 8 s here.
    const ch = channel('half_open', v.object({ n: v.number() }));
    const url = new URL(t.url);
    const proxy = await ChaosProxy.start(url.hostname, Number(url.port));
    url.port = String(proxy.port);
    const client = t.client({ host: '127.0.0.1', port: proxy.port, max: 2 } as never);
    const db = drizzle(client);
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
    await waitFor(() => started, { what: 'the handler to start' });
    const hole = proxy.blackhole(8000, 'heal');
    release();
    const t0 = performance.now();
    await listener.stop({ timeoutMs: 300 });
    const elapsed = performance.now() - t0;
    await hole;
    await client.end({ timeout: 1 });
    await proxy.close();
    expect(elapsed).toBeLessThan(3000);
  });
});
