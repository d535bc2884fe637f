/**
 * Options a user can get wrong fail at once with INVALID_OPTIONS and a message that says what is
 * allowed, and nothing is stored: no raw database error, no option silently ignored, and no duration
 * that Node's timers cannot hold (setTimeout fires anything above 2^31 - 1 ms after 1 ms, which would
 * abort every handler or spin a heartbeat).
 */
import { drizzle } from 'drizzle-orm/postgres-js';
import * as v from 'valibot';
import { afterEach, describe, expect, it } from 'vitest';
import { channel } from '../src/channel.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { notify } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { useTestDatabase } from './support/db.ts';

const t = useTestDatabase();
const jobs = channel('opt_jobs', v.object({ n: v.number() }));
const ordered = channel('opt_ordered', v.object({ n: v.number() }), { key: (p) => `k${p.n}` });
const throwingKey = channel('opt_throwing', v.object({ n: v.number() }), {
  key: () => {
    throw new Error('no key today');
  },
});

async function refused(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isPgPubSubError(error, 'INVALID_OPTIONS'), String(error)).toBe(true);
  expect((error as Error).message).toMatch(message);
}

async function stored(): Promise<number> {
  const [row] = await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications`;
  return row!.n as number;
}

afterEach(async () => {
  await t.sql`DELETE FROM pgpubsub.notifications`;
});

describe('notify() options', () => {
  it('refuses out-of-range times, oversized keys, unknown options and throwing key functions, storing nothing', async () => {
    const db = drizzle({ client: t.client({ max: 1 }) });
    const send = (payload: unknown, options: Record<string, unknown>) =>
      db.transaction((tx) => notify(tx, jobs, payload as any, options as any));
    await refused(
      send({ n: 1 }, { runAt: new Date(8.64e15) }),
      /runAt must fall between the years 1 and 9999 \(got 275760\)/,
    );
    await refused(
      send({ n: 1 }, { delayMs: 1e20 }),
      /delayMs must be a number of milliseconds from 0 to 3155760000000/,
    );
    await refused(send({ n: 1 }, { key: 'x'.repeat(1025) }), /key is 1025 bytes; at most 1024/);
    await refused(send({ n: 1 }, { key: 'é'.repeat(600) }), /key is 1200 bytes/);
    await refused(
      send({ n: 1 }, { runat: new Date() }),
      /unknown option "runat"; the options are schema, runAt/,
    );
    await refused(
      send([{ n: 1 }, { n: 2 }], {
        key: (_p: unknown, i: number) => {
          if (i === 1) throw new Error('boom');
          return 'a';
        },
      }),
      /Payload at index 1: notify\(\): the key function threw: boom\. Nothing was stored\./,
    );
    expect(await stored()).toBe(0);
    // At the limits, it is stored.
    await send({ n: 1 }, { key: 'x'.repeat(1024) });
    await send({ n: 2 }, { runAt: new Date('9999-12-31T00:00:00Z') });
    await send({ n: 3 }, { delayMs: 3_155_760_000_000 });
    expect(await stored()).toBe(3);
  });

  it('ordered channels: a throwing key function and an oversized ordering key are refused', async () => {
    const db = drizzle({ client: t.client({ max: 1 }) });
    await refused(
      db.transaction((tx) => notify(tx, throwingKey, { n: 1 })),
      /the key function of ordered channel "opt_throwing" threw: no key today/,
    );
    await refused(
      db.transaction((tx) => notify(tx, ordered, { n: 1 }, { orderingKey: 'k'.repeat(2000) })),
      /the ordering key of a message on channel "opt_ordered" is 2000 bytes; at most 1024/,
    );
    expect(await stored()).toBe(0);
  });
});

describe('listener durations', () => {
  it('refuses durations beyond what Node timers hold, and nonsense attempt counts', () => {
    const db = drizzle({ client: t.client({ max: 3 }) });
    const huge = 2 ** 31;
    expect(() => createListener(db, { timeoutMs: huge })).toThrow(
      /createListener: `timeoutMs` must be a number of milliseconds from 1 to 2147483647/,
    );
    expect(() => createListener(db, { timeoutMs: -1 })).toThrow(/`timeoutMs` must be/);
    expect(() => createListener(db, { pollIntervalMs: Number.NaN })).toThrow(
      /`pollIntervalMs` must be .*, or false/,
    );
    expect(() => createListener(db, { maxAttempts: 0 })).toThrow(/`maxAttempts` must be a positive integer/);
    expect(() => createListener(db, { idleWaitMs: huge })).toThrow(/`idleWaitMs` must be/);
    const l = createListener(db, { pollIntervalMs: false });
    expect(() => l.on(jobs, () => {}, { timeoutMs: huge })).toThrow(
      /\.on\("opt_jobs"\): `timeoutMs` must be/,
    );
    expect(() => l.on(jobs, () => {}, { maxAttempts: 1.5 })).toThrow(
      /`maxAttempts` must be a positive integer/,
    );
    expect(() => l.on(jobs, () => {}, { lease: huge })).toThrow(
      /`lease` must be a positive number of milliseconds up to 2147483647/,
    );
    expect(() => l.on(jobs, () => {}, { rate: { limit: 1, perMs: huge } })).toThrow(/`rate` must be/);
    expect(() => l.onBatch(jobs, () => {}, { maxWaitMs: huge })).toThrow(/`maxWaitMs` must be/);
    // The limits themselves are accepted.
    expect(() => l.on(jobs, () => {}, { timeoutMs: huge - 1, lease: huge - 1 })).not.toThrow();
  });

  it('stop() refuses a timeout beyond the timer range', async () => {
    const db = drizzle({ client: t.client({ max: 3 }) });
    const l = createListener(db);
    await expect(l.stop({ timeoutMs: 2 ** 31 })).rejects.toThrow(/stop\(\): `timeoutMs` must be/);
  });
});
