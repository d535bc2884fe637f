/**
 * Type tests on drizzle-orm 1.0's own table APIs (issue 15): `snakeCase.table`, `snakeCase.schema`,
 * `pgTable.withRLS`. drizzle-orm 0.45 has none of them, so this folder is type-checked only when the
 * installed drizzle-orm is 1.x (vitest.config.ts reads its version; CI's drizzle-orm 1.0 leg).
 */
import { integer, pgTable, serial, snakeCase, text, timestamp } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { describe, expectTypeOf, it } from 'vitest';
import { backfill, channel, createListener, notify, triggerChannel } from '../src/index.ts';

const db = drizzle({ client: postgres('postgres://localhost/none') });

const posts = snakeCase.table('posts', {
  id: serial().primaryKey(),
  authorId: integer().notNull(),
  publishedAt: timestamp({ withTimezone: true }),
});
type Post = typeof posts.$inferSelect;
const app = snakeCase.schema('app');
const tasks = app.table('tasks', { taskId: serial().primaryKey(), title: text().notNull() });
const secrets = pgTable.withRLS('secrets', { id: serial().primaryKey(), value: text().notNull() });

describe('trigger channels on drizzle-orm 1.0 tables', () => {
  it('types row images with the table’s own keys (snakeCase.table)', () => {
    const postEvents = triggerChannel(posts, {
      on: ['insert', 'update'],
      columns: ['authorId'],
      ordered: true,
    });
    createListener(db).on(postEvents, async (event, tx) => {
      if (event.op === 'update') {
        expectTypeOf(event.old).toEqualTypeOf<Post>();
        expectTypeOf(event.new.authorId).toEqualTypeOf<number>();
        expectTypeOf(event.new.publishedAt).toEqualTypeOf<Date | null>();
      } else {
        expectTypeOf(event.op).toEqualTypeOf<'insert' | 'snapshot'>();
        expectTypeOf(event.old).toEqualTypeOf<null>();
        expectTypeOf(event.new).toEqualTypeOf<Post>();
      }
      await tx.insert(posts).values({ authorId: event.new.authorId });
    });
    // @ts-expect-error: `columns` names the table's keys, not its database names.
    triggerChannel(posts, { on: ['update'], columns: ['author_id'] });
    expectTypeOf(backfill(db, postEvents, { batchSize: 500 })).resolves.toHaveProperty('rows');
  });

  it('accepts tables of snakeCase.schema and pgTable.withRLS', () => {
    const taskEvents = triggerChannel(tasks, { on: ['delete'], name: 'app tasks' });
    createListener(db).on(taskEvents, (event) => {
      if (event.op === 'delete') {
        expectTypeOf(event.old.taskId).toEqualTypeOf<number>();
        expectTypeOf(event.new).toEqualTypeOf<null>();
      }
    });
    const secretEvents = triggerChannel(secrets, { on: ['insert', 'truncate'] });
    createListener(db).on(secretEvents, (event) => {
      if (event.op === 'truncate') expectTypeOf(event.new).toEqualTypeOf<null>();
      else expectTypeOf(event.new.value).toEqualTypeOf<string>();
    });
  });

  it('notify takes a drizzle-orm 1.0 transaction', async () => {
    const published = channel('post_published', v.object({ id: v.number() }));
    await db.transaction(async (tx) => {
      await tx.insert(posts).values({ authorId: 1 });
      const sent = await notify(tx, published, { id: 1 }, { delayMs: 1000 });
      expectTypeOf(sent.id).toEqualTypeOf<bigint>();
    });
  });
});
