/**
 * Issue 18: a trigger channel's writer reads the wake-up flags only while some listener session of the
 * schema holds the presence lock (the pre-check of storage/notifications.ts `wakePrecheck`), on both of
 * the trigger's paths: the statement-level one (plain tables) and the row-level one (partitions). A
 * hand-made "listener session" holds the locks and the flag, so the test sees the SQL alone.
 * Absence of a NOTIFY is asserted with a sentinel NOTIFY sent after the write's commit: notifications
 * arrive in commit order, so once the sentinel is in, an earlier wake-up would be too.
 */
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { wakeLockTag } from '../src/storage/sql-names.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase([
  'CREATE TABLE wake_items (id int PRIMARY KEY, v text)',
  'CREATE TABLE wake_parts (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)',
  'CREATE TABLE wake_parts_1 PARTITION OF wake_parts FOR VALUES IN (1)',
]);

const items = pgTable('wake_items', { id: integer().primaryKey(), v: text() });
const parts = pgTable('wake_parts', { id: integer().primaryKey(), k: integer().notNull(), v: text() });
const itemEvents = triggerChannel(items, { on: ['insert', 'update'], name: 'wake_items' });
const partEvents = triggerChannel(parts, { on: ['insert'], name: 'wake_parts' });
const KEY = 424242;
const TAG = wakeLockTag('pgpubsub');

describe('a trigger writer and the wake-up pre-check', () => {
  const received: string[] = [];
  let locks: ReturnType<typeof t.client>;
  let listener: ReturnType<typeof t.client>;
  let sentinels = 0;

  beforeAll(async () => {
    for (const ch of [itemEvents, partEvents])
      for (const s of createTriggerSql(resolveTriggerSpec(ch))) await t.sql.unsafe(s);
    listener = t.client({ max: 1 });
    for (const channel of ['wake_items', 'wake_parts', 'sentinel'])
      await listener.listen(channel, () => received.push(channel));
    locks = t.client({ max: 1 });
    await locks`SELECT pg_advisory_lock(hashtext(${TAG}), ${KEY}::int)`;
    await t.sql`INSERT INTO pgpubsub.wakeups (channel, key, idle)
      VALUES ('wake_items', ${KEY}, true), ('wake_parts', ${KEY}, true)`;
  });
  afterAll(async () => {
    await locks?.end({ timeout: 5 });
    await listener?.end({ timeout: 5 });
  });

  /** Runs `write`, then a sentinel NOTIFY, and returns the wake-ups the write sent. */
  async function wakeups(write: () => Promise<unknown>): Promise<string[]> {
    received.length = 0;
    await write();
    await t.sql`SELECT pg_notify('sentinel', '')`;
    sentinels++;
    await waitFor(() => received.includes('sentinel'), { what: `sentinel ${sentinels}` });
    return received.filter((c) => c !== 'sentinel');
  }

  it('no presence lock held: the flag of a live key is not even read, no NOTIFY', async () => {
    // A live key lock with an idle flag, but no session holds the presence lock (a state a real
    // listener never shows): the full check alone would NOTIFY, the pre-check skips it.
    expect(await wakeups(() => t.sql`INSERT INTO wake_items VALUES (1, 'a')`)).toEqual([]);
    expect(await wakeups(() => t.sql`INSERT INTO wake_parts_1 VALUES (1, 1, 'a')`)).toEqual([]);
    expect(await wakeups(() => t.sql`INSERT INTO wake_parts VALUES (2, 1, 'b')`)).toEqual([]);
  });

  it('a live idle listener session is woken through the statement path and the partition path', async () => {
    await locks`SELECT pg_advisory_lock_shared(hashtext(${TAG}), 0)`;
    expect(await wakeups(() => t.sql`INSERT INTO wake_items VALUES (3, 'c')`)).toEqual(['wake_items']);
    expect(await wakeups(() => t.sql`UPDATE wake_items SET v = 'd' WHERE id = 3`)).toEqual(['wake_items']);
    expect(await wakeups(() => t.sql`INSERT INTO wake_parts_1 VALUES (3, 1, 'c')`)).toEqual(['wake_parts']);
    expect(await wakeups(() => t.sql`INSERT INTO wake_parts VALUES (4, 1, 'd')`)).toEqual(['wake_parts']);
    // Busy (flag cleared): the pre-check passes, the flag query finds nothing.
    await t.sql`UPDATE pgpubsub.wakeups SET idle = false`;
    expect(await wakeups(() => t.sql`INSERT INTO wake_items VALUES (5, 'e')`)).toEqual([]);
    // Wake-ups turned off for the transaction.
    await t.sql`UPDATE pgpubsub.wakeups SET idle = true`;
    expect(
      await wakeups(() =>
        t.sql.begin(async (tx) => {
          await tx`SET LOCAL pgpubsub.wake = 'off'`;
          await tx`INSERT INTO wake_items VALUES (6, 'f')`;
        }),
      ),
    ).toEqual([]);
    // Every write above stored its event, woken or not.
    const [row] = await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
    expect(row!.n).toBe(9);
  });
});
