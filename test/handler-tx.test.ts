import * as orm from 'drizzle-orm';
import * as pgCore from 'drizzle-orm/pg-core';
import { afterEach, describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { createListener, type Listener } from '../src/runtime/listener.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

// drizzle-orm 1.0 declares casing on tables and relations with defineRelations; 0.x on the database.
const V1 = 'defineRelations' in orm;
const { integer, serial, text } = pgCore;
const table: typeof pgCore.pgTable = V1 ? (pgCore as any).snakeCase.table : pgCore.pgTable;

const writers = table('tx_writers', { id: serial().primaryKey(), fullName: text().notNull() });
const books = table('tx_books', {
  id: serial().primaryKey(),
  writerId: integer().notNull(),
  bookTitle: text().notNull(),
});
const writerEvents = triggerChannel(writers, { on: ['insert'] });

function relationalConfig(): Record<string, unknown> {
  if (V1) {
    const relations = (orm as any).defineRelations({ writers, books }, (r: any) => ({
      writers: { books: r.many.books() },
      books: { writer: r.one.writers({ from: r.books.writerId, to: r.writers.id }) },
    }));
    return { relations };
  }
  const writerRelations = (orm as any).relations(writers, ({ many }: any) => ({ books: many(books) }));
  const bookRelations = (orm as any).relations(books, ({ one }: any) => ({
    writer: one(writers, { fields: [books.writerId], references: [writers.id] }),
  }));
  return { schema: { writers, books, writerRelations, bookRelations }, casing: 'snake_case' };
}

const t = useTestDatabase([
  'CREATE TABLE tx_writers (id serial PRIMARY KEY, full_name text NOT NULL)',
  'CREATE TABLE tx_books (id serial PRIMARY KEY, writer_id integer NOT NULL, book_title text NOT NULL)',
]);

const running: Listener<any>[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop({ timeoutMs: 5000 })));
  await t.sql`TRUNCATE tx_writers, tx_books, pgpubsub.notifications RESTART IDENTITY`;
});

describe(`handler tx on drizzle-orm ${V1 ? '1.0' : '0.x'} (built with drizzle()'s public factory)`, () => {
  it('has the database casing, relational queries, the logger and nested transactions', async () => {
    await installChannels(t.sql, [writerEvents], V1 ? undefined : 'snake_case');
    const logged: string[] = [];
    const db: any = t.drizzle(4, {
      logger: { logQuery: (query: string) => logged.push(query) },
      ...relationalConfig(),
    });
    const seen: unknown[] = [];
    const listener = createListener(db, { pollIntervalMs: false }).on(
      writerEvents,
      async (event, tx: any) => {
        await tx.insert(books).values({ writerId: event.new.id, bookTitle: `by ${event.new.fullName}` });
        await tx
          .transaction(async (inner: any) => {
            await inner.insert(books).values({ writerId: event.new.id, bookTitle: 'rolled back' });
            throw new Error('undo the nested one');
          })
          .catch(() => {});
        const found = await tx.query.writers.findFirst({
          where: V1 ? { id: event.new.id } : orm.eq(writers.id, event.new.id),
          with: { books: true },
        });
        seen.push({ new: event.new, found });
      },
    );
    running.push(listener);
    await db.insert(writers).values({ fullName: 'Ada Lovelace' });
    const summary = await listener.drain();
    expect(summary).toMatchObject({ processed: 1, retried: 0, dead: 0 });
    expect(seen).toEqual([
      {
        new: { id: 1, fullName: 'Ada Lovelace' },
        found: {
          id: 1,
          fullName: 'Ada Lovelace',
          books: [{ id: 1, writerId: 1, bookTitle: 'by Ada Lovelace' }],
        },
      },
    ]);
    expect(await db.select().from(books)).toEqual([{ id: 1, writerId: 1, bookTitle: 'by Ada Lovelace' }]);
    expect(logged.some((q) => q.startsWith('insert into "tx_books"'))).toBe(true);
  });

  it('rolls a failing handler back, relational writes included, and retries it', async () => {
    await installChannels(t.sql, [writerEvents], V1 ? undefined : 'snake_case');
    const db: any = t.drizzle(4, relationalConfig());
    let calls = 0;
    const listener = createListener(db, { pollIntervalMs: false, maxAttempts: 1 }).on(
      writerEvents,
      async (event, tx: any) => {
        calls++;
        await tx.insert(books).values({ writerId: event.new.id, bookTitle: 'lost' });
        expect(await tx.query.books.findMany()).toHaveLength(1);
        tx.rollback();
      },
    );
    running.push(listener);
    await db.insert(writers).values({ fullName: 'Grace Hopper' });
    expect(await listener.drain()).toMatchObject({ dead: 1 });
    expect(calls).toBe(1);
    expect(await db.select().from(books)).toEqual([]);
  });

  it('takes relations/schema, casing and the query logger from the drizzle option, over what db has', async () => {
    await installChannels(t.sql, [writerEvents], V1 ? undefined : 'snake_case');
    // A database created without any of them: the option alone gives them to handlers.
    const plain: any = t.drizzle(4);
    const logged: string[] = [];
    const seen: unknown[] = [];
    const listener = createListener(plain, {
      pollIntervalMs: false,
      drizzle: { ...relationalConfig(), logger: { logQuery: (query: string) => logged.push(query) } },
    }).on(writerEvents, async (event, tx: any) => {
      await tx.insert(books).values({ writerId: event.new.id, bookTitle: 'via option' });
      seen.push({
        new: event.new,
        found: await tx.query.writers.findFirst({
          where: V1 ? { id: event.new.id } : orm.eq(writers.id, event.new.id),
          with: { books: true },
        }),
      });
    });
    running.push(listener);
    await t.sql`INSERT INTO tx_writers (full_name) VALUES ('Katherine Johnson')`;
    expect(await listener.drain()).toMatchObject({ processed: 1, retried: 0, dead: 0 });
    expect(seen).toEqual([
      {
        new: { id: 1, fullName: 'Katherine Johnson' },
        found: {
          id: 1,
          fullName: 'Katherine Johnson',
          books: [{ id: 1, writerId: 1, bookTitle: 'via option' }],
        },
      },
    ]);
    expect(logged.some((q) => q.startsWith('insert into "tx_books"'))).toBe(true);
  });
});
