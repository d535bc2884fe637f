/**
 * Issue 14 item 2: every row change of a partitioned table produces exactly its events, whichever
 * table the statement names (the parent or a partition, including partitions attached after the
 * channel was installed); a row an UPDATE moves to another partition is a delete then an insert.
 * Table inheritance is refused, at install and at run time, rather than losing events silently.
 */
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { useTestDatabase } from './support/db.ts';

const t = useTestDatabase([
  'CREATE TABLE measures (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)',
  'CREATE TABLE measures_1 PARTITION OF measures FOR VALUES IN (1)',
  'CREATE TABLE measures_2 PARTITION OF measures FOR VALUES IN (2)',
  'CREATE TABLE animals (id int PRIMARY KEY, v text)',
  'CREATE TABLE cats (purrs bool) INHERITS (animals)',
  'CREATE TABLE plants (id int PRIMARY KEY, v text)',
]);

const measuresPk = pgTable('measures', { id: integer().primaryKey(), k: integer().notNull(), v: text() });
const animals = pgTable('animals', { id: integer().primaryKey(), v: text() });
const plants = pgTable('plants', { id: integer().primaryKey(), v: text() });

async function install(statements: string[]) {
  for (const s of statements) await t.sql.unsafe(s);
}
const events = async (channel: string) =>
  (await t.sql`SELECT op, old, new FROM pgpubsub.notifications WHERE channel = ${channel} ORDER BY id`).map(
    (r) => [r.op, r.old?.v ?? null, r.new?.v ?? null, r.old?.k ?? r.new?.k],
  );

describe('partitioned tables', () => {
  it('records inserts, updates and deletes addressed to the parent or to a partition, and moved rows', async () => {
    const ch = triggerChannel(measuresPk, { on: ['insert', 'update', 'delete'], name: 'measures' });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    // A partition attached after the channel was installed.
    await t.sql`CREATE TABLE measures_3 (id int, k int, v text, PRIMARY KEY (id, k))`;
    await t.sql`ALTER TABLE measures ATTACH PARTITION measures_3 FOR VALUES IN (3)`;
    await t.sql`INSERT INTO measures VALUES (1, 1, 'parent insert'), (2, 2, 'parent insert 2')`;
    await t.sql`INSERT INTO measures_1 VALUES (3, 1, 'direct insert')`;
    await t.sql`INSERT INTO measures_3 VALUES (4, 3, 'attached insert')`;
    await t.sql`UPDATE measures SET v = 'parent update' WHERE id = 1`;
    await t.sql`UPDATE measures_1 SET v = 'direct update' WHERE id = 3`;
    await t.sql`UPDATE measures_3 SET v = 'attached update' WHERE id = 4`;
    await t.sql`UPDATE measures SET k = 3, v = 'moved' WHERE id = 1`;
    await t.sql`DELETE FROM measures_2`;
    await t.sql`DELETE FROM measures_3 WHERE id = 4`;
    await t.sql`DELETE FROM measures`;
    expect(await events('measures')).toEqual([
      ['insert', null, 'parent insert', 1],
      ['insert', null, 'parent insert 2', 2],
      ['insert', null, 'direct insert', 1],
      ['insert', null, 'attached insert', 3],
      ['update', 'parent insert', 'parent update', 1],
      ['update', 'direct insert', 'direct update', 1],
      ['update', 'attached insert', 'attached update', 3],
      // A row moved to another partition: a delete from the old one, then an insert into the new one.
      ['delete', 'parent update', null, 1],
      ['insert', null, 'moved', 3],
      ['delete', 'parent insert 2', null, 2],
      ['delete', 'attached update', null, 3],
      ['delete', 'direct update', null, 1],
      ['delete', 'moved', null, 3],
    ]);
  });

  it('honours when on partitions, written against new and old', async () => {
    const ch = triggerChannel(measuresPk, {
      on: ['insert', 'delete'],
      name: 'measures_when',
      when: `coalesce(new.v, old.v) <> 'hidden'`,
    });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    await t.sql`INSERT INTO measures_1 VALUES (10, 1, 'hidden'), (11, 1, 'shown')`;
    await t.sql`DELETE FROM measures_1 WHERE id IN (10, 11)`;
    expect(await events('measures_when')).toEqual([
      ['insert', null, 'shown', 1],
      ['delete', 'shown', null, 1],
    ]);
  });
});

describe('table inheritance', () => {
  it('refuses to install a channel on a table with inheritance children', async () => {
    const ch = triggerChannel(animals, { on: ['insert', 'update', 'delete'] });
    await expect(install(createTriggerSql(resolveTriggerSpec(ch)))).rejects.toThrow(/inheritance children/);
  });

  it('refuses updates and deletes through the parent once a child is added later', async () => {
    const ch = triggerChannel(plants, { on: ['insert', 'update', 'delete'] });
    await install(createTriggerSql(resolveTriggerSpec(ch)));
    await t.sql`CREATE TABLE trees (height int) INHERITS (plants)`;
    await t.sql`INSERT INTO trees (id, v, height) VALUES (1, 'oak', 30)`;
    await expect(t.sql`UPDATE plants SET v = 'elm'`).rejects.toThrow(/inheritance children/);
    await expect(t.sql`DELETE FROM plants`).rejects.toThrow(/inheritance children/);
  });
});
