import { sql } from 'drizzle-orm';
import { integer, pgTable, serial } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { createListener, triggerChannel, withContext } from '../src/index.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

// `on: ['truncate']`: one event per truncated table and statement (CASCADE included), no row images;
// a channel without it stays silent on TRUNCATE.
const parents = pgTable('tr_parents', { id: serial().primaryKey() });
const children = pgTable('tr_children', {
  id: serial().primaryKey(),
  parentId: integer('parent_id').notNull(),
});
const quiet = pgTable('tr_quiet', { id: serial().primaryKey() });

const parentEvents = triggerChannel(parents, { on: ['insert', 'truncate'] });
const childEvents = triggerChannel(children, { on: ['truncate'] });
const quietEvents = triggerChannel(quiet, { on: ['insert', 'update', 'delete'] });

const t = useTestDatabase([
  'CREATE TABLE tr_parents (id serial PRIMARY KEY)',
  'CREATE TABLE tr_children (id serial PRIMARY KEY, parent_id integer NOT NULL REFERENCES tr_parents)',
  'CREATE TABLE tr_quiet (id serial PRIMARY KEY)',
]);

const events = async () =>
  (await t.sql`SELECT channel, op, old, new, context FROM pgpubsub.notifications ORDER BY id`).map((r) => ({
    ...r,
  }));

describe('TRUNCATE events', () => {
  it('one event per truncated table: several tables in one statement, CASCADE, and silence without the op', async () => {
    await installChannels(t.sql, [parentEvents, childEvents, quietEvents]);
    await t.sql`INSERT INTO tr_parents DEFAULT VALUES`;
    await t.sql`INSERT INTO tr_children (parent_id) VALUES (1)`;
    await t.sql`INSERT INTO tr_quiet DEFAULT VALUES`;
    await t.sql`DELETE FROM pgpubsub.notifications`;

    await t.sql`TRUNCATE tr_parents, tr_children, tr_quiet`;
    expect(await events()).toEqual([
      { channel: 'tr_parents', op: 'truncate', old: null, new: null, context: {} },
      { channel: 'tr_children', op: 'truncate', old: null, new: null, context: {} },
    ]);
    await t.sql`DELETE FROM pgpubsub.notifications`;

    // CASCADE truncates the children too: each table's own channel gets its event, with the context.
    await t.db.transaction(async (tx) => {
      await withContext(tx, { actor: 'ops' });
      await tx.execute(sql`TRUNCATE tr_parents CASCADE`);
    });
    expect((await events()).map((e) => [e.channel, e.op, e.context])).toEqual([
      ['tr_parents', 'truncate', { actor: 'ops' }],
      ['tr_children', 'truncate', { actor: 'ops' }],
    ]);

    // A rolled-back TRUNCATE leaves nothing.
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql
      .begin(async (tx) => {
        await tx`TRUNCATE tr_parents CASCADE`;
        throw new Error('roll back');
      })
      .catch(() => {});
    expect(await events()).toEqual([]);
  });

  it('hands the handler a truncate event without row images, beside the row events', async () => {
    await installChannels(t.sql, [parentEvents]);
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql`INSERT INTO tr_parents DEFAULT VALUES`;
    await t.sql`TRUNCATE tr_parents CASCADE`;
    const seen: unknown[] = [];
    await createListener(t.db)
      .on(parentEvents, (event) => {
        if (event.op === 'truncate') seen.push({ op: event.op, old: event.old, new: event.new });
        else seen.push({ op: event.op, id: event.new.id });
      })
      .drain();
    expect(seen).toHaveLength(2);
    expect(seen[1]).toEqual({ op: 'truncate', old: null, new: null });
    expect(seen[0]).toMatchObject({ op: 'insert' });
  });

  it('refuses a truncate event on a channel that does not declare it (dead letter, nothing silently dropped)', async () => {
    await installChannels(t.sql, [quietEvents]);
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql`INSERT INTO pgpubsub.notifications (channel, op) VALUES ('tr_quiet', 'truncate')`;
    await createListener(t.db)
      .on(quietEvents, () => {})
      .drain();
    const [row] = await t.sql`SELECT status, last_error FROM pgpubsub.notifications`;
    expect(row?.status).toBe('failed');
    expect(row?.last_error).toMatch(
      /op is "truncate", but channel "tr_quiet" handles insert, update, delete only/,
    );
  });
});
