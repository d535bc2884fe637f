import * as orm from 'drizzle-orm';
import { eq } from 'drizzle-orm';
import * as pgCore from 'drizzle-orm/pg-core';
import {
  bigint,
  boolean,
  customType,
  date,
  doublePrecision,
  integer,
  interval,
  json,
  jsonb,
  numeric,
  pgEnum,
  pgSchema,
  pgTable,
  real,
  serial,
  text,
  time,
  timestamp,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { triggerChannel } from '../src/channel.ts';
import { createListener } from '../src/runtime/listener.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

const mood = pgEnum('mood', ['happy', 'sad']);
const point = customType<{ data: { x: number; y: number }; driverData: string }>({
  dataType: () => 'text',
  toDriver: (p) => `${p.x},${p.y}`,
  fromDriver: (s) => {
    const [x, y] = s.split(',').map(Number);
    return { x: x!, y: y! };
  },
});
// drizzle-orm 1.0 sets casing on the schema (and tables); 0.x on the database (below).
const V1 = 'defineRelations' in orm;
const app = (V1 ? (pgCore as any).snakeCase.schema : pgSchema)('app') as ReturnType<typeof pgSchema<'app'>>;
const things = app.table('things', {
  id: serial().primaryKey(),
  fullName: text().notNull(),
  ts: timestamp({ precision: 6 }),
  tsz: timestamp({ withTimezone: true, precision: 6 }),
  tsString: timestamp({ mode: 'string', precision: 6 }),
  day: date({ mode: 'date' }),
  dayString: date(),
  at: time(),
  big: bigint({ mode: 'bigint' }),
  bigNumber: bigint({ mode: 'number' }),
  amount: numeric({ precision: 40, scale: 10 }),
  doc: jsonb().$type<{ a: number[]; nested: { ok: boolean } }>(),
  plain: json(),
  tags: text().array(),
  grid: integer().array().array(),
  flag: boolean(),
  uid: uuid(),
  span: interval(),
  dbl: doublePrecision(),
  rl: real(),
  feeling: mood(),
  where: point(),
  explicitName: varchar('Explicit Name', { length: 20 }),
});
const thingEvents = triggerChannel(things, { on: ['insert', 'update', 'delete'] });

const drift = pgTable('drift', { id: serial().primaryKey(), keep: text(), added: text() });
const driftEvents = triggerChannel(drift, { on: ['insert'] });

const t = useTestDatabase([
  `CREATE TYPE mood AS ENUM ('happy', 'sad')`,
  'CREATE SCHEMA app',
  `CREATE TABLE app.things (
    id serial PRIMARY KEY, full_name text NOT NULL, ts timestamp(6), tsz timestamptz(6), ts_string timestamp(6),
    day date, day_string date, at time, big bigint, big_number bigint, amount numeric(40, 10), doc jsonb, plain json,
    tags text[], grid integer[][], flag boolean, uid uuid, span interval, dbl double precision, rl real, feeling mood,
    "where" text, "Explicit Name" varchar(20))`,
  'CREATE TABLE drift (id serial PRIMARY KEY, keep text, gone text)',
]);

describe('decoding row images', () => {
  it('reads old/new back exactly as db.select() returns them, with casing', async () => {
    const db = t.drizzle(4, V1 ? {} : { casing: 'snake_case' });
    await installChannels(t.sql, [thingEvents], 'snake_case');
    const row = {
      fullName: `O'Brien "quoted" ✓`,
      ts: new Date('2026-01-02T03:04:05.123Z'),
      tsz: new Date('2026-01-02T03:04:05.987Z'),
      tsString: '2026-01-02 03:04:05.123456',
      day: new Date('2024-02-29T00:00:00Z'),
      dayString: '2024-02-29',
      at: '10:11:12.5',
      big: 9007199254740993n,
      bigNumber: 42,
      amount: '12345678901234567890.0123456789',
      doc: { a: [1, 2, 3], nested: { ok: true } },
      plain: { x: 'y' },
      tags: ['a', 'b "c"', 'd,e'],
      grid: [
        [1, 2],
        [3, 4],
      ],
      flag: true,
      uid: '6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b',
      span: '1 day 02:00:00',
      dbl: 0.1 + 0.2,
      rl: 1.5,
      feeling: 'sad' as const,
      where: { x: 1, y: -2 },
      explicitName: 'named',
    };
    await db.insert(things).values(row);
    await db.update(things).set({ fullName: 'changed', big: -9007199254740993n }).where(eq(things.id, 1));
    const [afterUpdate] = await db.select().from(things);
    await db.delete(things);
    const events: any[] = [];
    await createListener(db)
      .on(thingEvents, (e) => void events.push(e))
      .drain();
    expect(events.map((e) => e.op)).toEqual(['insert', 'update', 'delete']);
    const beforeUpdate = { ...afterUpdate, fullName: row.fullName, big: row.big };
    expect(events[0].new).toEqual(beforeUpdate);
    expect(events[0].old).toBeNull();
    expect(events[1].old).toEqual(beforeUpdate);
    expect(events[1].new).toEqual(afterUpdate);
    expect(events[2].old).toEqual(afterUpdate);
    expect(events[2].new).toBeNull();
    expect(typeof events[1].new.big).toBe('bigint');
    expect(events[1].new.amount).toBe('12345678901234567890.0123456789');
    expect(events[1].new.tsString).toBe('2026-01-02 03:04:05.123456');
    expect(events[1].new.where).toEqual({ x: 1, y: -2 });
  });

  it('decodes images written before the table changed: unknown keys ignored, missing ones null', async () => {
    await installChannels(t.sql, [driftEvents]);
    await t.sql`INSERT INTO drift (keep, gone) VALUES ('k', 'g')`;
    await t.sql`ALTER TABLE drift DROP COLUMN gone, ADD COLUMN added text`;
    const events: any[] = [];
    await createListener(t.db)
      .on(driftEvents, (e) => void events.push(e.new))
      .drain();
    expect(events).toEqual([{ id: 1, keep: 'k', added: null }]);
  });

  it('dead-letters an image that cannot be cast, and decodes the rest of the batch', async () => {
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql`INSERT INTO drift (keep) VALUES ('before')`;
    await t.sql`INSERT INTO pgpubsub.notifications (channel, op, new) VALUES ('drift', 'insert', '{"id": "not a number"}')`;
    await t.sql`INSERT INTO drift (keep) VALUES ('after')`;
    const seen: string[] = [];
    const summary = await createListener(t.db)
      .on(driftEvents, (e) => void seen.push(e.new.keep!))
      .drain();
    expect(seen).toEqual(['before', 'after']);
    expect(summary).toMatchObject({ processed: 2, dead: 1 });
    const [failed] = await t.sql`SELECT last_error FROM pgpubsub.notifications WHERE status = 'failed'`;
    expect(failed!.last_error).toMatch(
      /cannot be decoded into "public"."drift": invalid input syntax for type integer/,
    );
  });
});
