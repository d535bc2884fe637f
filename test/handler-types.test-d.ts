import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { describe, expectTypeOf, it } from 'vitest';
import { channel, createListener, notify, triggerChannel } from '../src/index.ts';

const authors = pgTable('authors', { id: serial().primaryKey(), name: text().notNull(), age: integer() });
type Author = typeof authors.$inferSelect;
const db = drizzle({ client: postgres('postgres://localhost/none') });

describe('handler types', () => {
  it('narrows old/new by op for trigger channels', () => {
    const all = triggerChannel(authors, { on: ['insert', 'update', 'delete'] });
    createListener(db).on(all, (event, tx) => {
      expectTypeOf(event.id).toEqualTypeOf<string>();
      expectTypeOf(event.attempt).toEqualTypeOf<number>();
      expectTypeOf(event.createdAt).toEqualTypeOf<Date>();
      expectTypeOf(event.context).toEqualTypeOf<Record<string, unknown>>();
      expectTypeOf(event.signal).toEqualTypeOf<AbortSignal>();
      if (event.op === 'insert') {
        expectTypeOf(event.old).toEqualTypeOf<null>();
        expectTypeOf(event.new).toEqualTypeOf<Author>();
      } else if (event.op === 'update') {
        expectTypeOf(event.old).toEqualTypeOf<Author>();
        expectTypeOf(event.new).toEqualTypeOf<Author>();
      } else if (event.op === 'snapshot') {
        // Written by backfill(): every trigger channel can receive them.
        expectTypeOf(event.old).toEqualTypeOf<null>();
        expectTypeOf(event.new).toEqualTypeOf<Author>();
      } else {
        expectTypeOf(event.op).toEqualTypeOf<'delete'>();
        expectTypeOf(event.new).toEqualTypeOf<null>();
        expectTypeOf(event.old).toEqualTypeOf<Author>();
      }
      expectTypeOf(tx.insert).toBeFunction();
      expectTypeOf(tx.rollback).toBeFunction();
    });
  });

  it('knows an insert-only channel has no old row', () => {
    const inserts = triggerChannel(authors, { on: ['insert'] });
    createListener(db).on(inserts, (event) => {
      expectTypeOf(event.op).toEqualTypeOf<'insert' | 'snapshot'>();
      expectTypeOf(event.new.name).toEqualTypeOf<string>();
      expectTypeOf(event.new.age).toEqualTypeOf<number | null>();
      expectTypeOf(event.old).toEqualTypeOf<null>();
    });
  });

  it('types truncate events without row images, only on channels that ask for them', () => {
    const truncates = triggerChannel(authors, { on: ['insert', 'truncate'] });
    createListener(db).on(truncates, (event) => {
      if (event.op === 'truncate') {
        expectTypeOf(event.old).toEqualTypeOf<null>();
        expectTypeOf(event.new).toEqualTypeOf<null>();
      } else {
        expectTypeOf(event.op).toEqualTypeOf<'insert' | 'snapshot'>();
        expectTypeOf(event.new).toEqualTypeOf<Author>();
      }
    });
    createListener(db).on(triggerChannel(authors, { on: ['insert'] }), (event) => {
      // @ts-expect-error a channel without 'truncate' gets no truncate events
      if (event.op === 'truncate') return;
    });
  });

  it('types custom payloads from the schema output, and notify() from its input', async () => {
    const mail = channel('mail', v.object({ to: v.string(), n: v.pipe(v.string(), v.transform(Number)) }));
    createListener(db).on(mail, (event, tx) => {
      expectTypeOf(event.payload).toEqualTypeOf<{ to: string; n: number }>();
      expectTypeOf(tx.select).toBeFunction();
    });
    await notify(db, mail, { to: 'x', n: '1' });
    // @ts-expect-error n must be the schema's input type (string)
    await notify(db, mail, { to: 'x', n: 1 });
    // @ts-expect-error a trigger channel cannot be notified by hand
    await notify(db, triggerChannel(authors, { on: ['insert'] }), {});
  });

  it('gives broadcast handlers the event and the database', () => {
    const bust = channel('bust', v.object({ key: v.string() }), { broadcast: true });
    createListener(db).on(bust, (event, database) => {
      expectTypeOf(event.payload).toEqualTypeOf<{ key: string }>();
      expectTypeOf(event.receivedAt).toEqualTypeOf<Date>();
      expectTypeOf(database).toEqualTypeOf<typeof db>();
    });
  });

  it('rejects unknown columns and operations at compile time', () => {
    // @ts-expect-error not an operation
    triggerChannel(authors, { on: ['upsert'] });
    // @ts-expect-error not a column key
    triggerChannel(authors, { on: ['update'], columns: ['nope'] });
    triggerChannel(authors, { on: ['update'], columns: ['name', 'age'] });
  });

  it('types lease handlers: the event gains idempotencyKey, the second argument is db', () => {
    const mail = channel('mail_lease', v.object({ to: v.string() }));
    createListener(db).on(
      mail,
      (event, database) => {
        expectTypeOf(event.payload).toEqualTypeOf<{ to: string }>();
        expectTypeOf(event.idempotencyKey).toEqualTypeOf<string>();
        expectTypeOf(event.signal).toEqualTypeOf<AbortSignal>();
        expectTypeOf(database).toEqualTypeOf<typeof db>();
      },
      { lease: '5m' },
    );
    createListener(db).on(mail, () => {}, { lease: 300_000, concurrency: 2, rate: '10/s', maxAttempts: 3 });
    createListener(db).on(mail, () => {}, { rate: { limit: 100, perMs: 1000 }, concurrency: 5 });
    // @ts-expect-error not a duration
    createListener(db).on(mail, () => {}, { lease: '5 minutes' });
    // @ts-expect-error not a rate
    createListener(db).on(mail, () => {}, { rate: '10 per second' });
    createListener(db).on(mail, (event) => {
      // @ts-expect-error only lease handlers get an idempotency key
      event.idempotencyKey;
    });
    const inserts = triggerChannel(authors, { on: ['insert'] });
    createListener(db).on(
      inserts,
      (event) => {
        expectTypeOf(event.new).toEqualTypeOf<Author>();
        expectTypeOf(event.idempotencyKey).toEqualTypeOf<string>();
      },
      { lease: '1m' },
    );
    const bust = channel('bust_lease', v.object({ key: v.string() }), { broadcast: true });
    // @ts-expect-error a broadcast handler takes no lease
    createListener(db).on(bust, () => {}, { lease: '1m' });
  });

  it('types batch handlers: an array of events, tx, and an optional { failed } result', () => {
    const inserts = triggerChannel(authors, { on: ['insert'] });
    createListener(db).onBatch(
      inserts,
      (events, tx) => {
        expectTypeOf(events[0]!.new).toEqualTypeOf<Author>();
        expectTypeOf(events[0]!.op).toEqualTypeOf<'insert' | 'snapshot'>();
        expectTypeOf(tx.insert).toBeFunction();
        return { failed: [{ event: events[0]!, error: new Error('x') }] };
      },
      { size: 50, maxWaitMs: 100, concurrency: 2 },
    );
    const mail = channel('mail_batch', v.object({ to: v.string() }));
    createListener(db).onBatch(mail, async (events) => {
      expectTypeOf(events[0]!.payload).toEqualTypeOf<{ to: string }>();
    });
    // @ts-expect-error failed entries name events
    createListener(db).onBatch(mail, () => ({ failed: ['1'] }));
    // @ts-expect-error rate is not a batch handler option
    createListener(db).onBatch(mail, () => {}, { rate: '1/s' });
    const bust = channel('bust_batch', v.object({ key: v.string() }), { broadcast: true });
    // @ts-expect-error batch handlers are for durable channels
    createListener(db).onBatch(bust, () => {});
  });

  it('types the options of ordered channels', async () => {
    const rows = triggerChannel(authors, { on: ['update'], ordered: true, onDeadLetter: 'skip' });
    expectTypeOf(rows.ordered).toEqualTypeOf<boolean>();
    // @ts-expect-error onDeadLetter is 'block' or 'skip'
    triggerChannel(authors, { on: ['update'], ordered: true, onDeadLetter: 'drop' });
    // @ts-expect-error ordered is a boolean
    triggerChannel(authors, { on: ['update'], ordered: 'yes' });
    const orders = channel(
      'orders',
      v.object({ customer: v.string(), n: v.pipe(v.string(), v.transform(Number)) }),
      {
        // The key function gets the payload as notify() takes it (the schema's input).
        key: (p) => {
          expectTypeOf(p).toEqualTypeOf<{ customer: string; n: string }>();
          return p.customer;
        },
      },
    );
    // @ts-expect-error the key is a string
    channel('bad', v.object({ n: v.number() }), { key: (p) => p.n });
    await notify(db, orders, { customer: 'c', n: '1' }, { orderingKey: 'other' });
    // @ts-expect-error orderingKey is a string
    await notify(db, orders, { customer: 'c', n: '1' }, { orderingKey: 1 });
  });
});
