import { drizzle } from 'drizzle-orm/postgres-js';
import { afterAll, describe, expect, it } from 'vitest';
import { status } from '../src/admin.ts';
import { isPgPubSubError } from '../src/errors.ts';
import { createListener } from '../src/runtime/listener.ts';
import { ScheduleRunner } from '../src/runtime/schedule-runner.ts';
import { type AnySchedule, MAX_CATCH_UP, schedule } from '../src/schedule.ts';
import { upsertScheduleSql } from '../src/storage/schedules.ts';
import { buildCli, removeCli, runCli } from './fixtures/cli-run.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';
import { workerPool } from './support/workers.ts';

const t = useTestDatabase([
  'CREATE TABLE ticks (slot timestamptz NOT NULL, worker text NOT NULL, source text)',
]);

/** Installs `s` as its migration would. */
const install = (s: AnySchedule) =>
  t.sql.unsafe(upsertScheduleSql({ name: s.name, ...s.schedule }, 'pgpubsub'));
/** Moves the fence back as if every listener had been down for `ms`. */
const downFor = (name: string, ms: number) =>
  t.sql`UPDATE pgpubsub.schedules SET last_slot = date_trunc('minute', now()) - ${`${ms} milliseconds`}::interval WHERE name = ${name}`;
const pendingOf = (name: string) =>
  t.sql<
    { slot: string }[]
  >`SELECT payload->>'slot' AS slot FROM pgpubsub.notifications WHERE channel = ${name} ORDER BY id`.then(
    (rows) => rows.map((r) => r.slot),
  );

describe('schedules: every slot exactly once across 3 listener processes', () => {
  const pool = workerPool('schedule-worker.ts', () => t.url);
  afterAll(() => pool.killAll());

  it('an every-second schedule: each slot since the fence handled exactly once, none skipped', async () => {
    await t.sql.unsafe(
      upsertScheduleSql(
        // catchUp 'all': slots that pass while the workers start (however slow) fire too.
        {
          name: 'tick',
          cron: '* * * * * *',
          timezone: 'UTC',
          payload: { source: 'fixture' },
          catchUp: MAX_CATCH_UP,
        },
        'pgpubsub',
      ),
    );
    const [start] = await t.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM last_slot) * 1000)::float8 AS ms FROM pgpubsub.schedules WHERE name = 'tick'`;
    await Promise.all(['w1', 'w2', 'w3'].map((name) => pool.start(name)));
    const handled = await waitFor(
      async () => {
        const rows = await t.sql<{ worker: string; source: string }[]>`
          SELECT worker, source FROM ticks ORDER BY slot`;
        return rows.length >= 5 ? rows : null;
      },
      { timeoutMs: 45_000, what: '5 slots handled' },
    );
    await pool.killAll();
    // Every slot after the fence up to the stored fence was stored exactly once: handled once (ticks),
    // or still pending if a worker was killed before handling it. None twice, none skipped.
    const [fence] = await t.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM last_slot) * 1000)::float8 AS ms FROM pgpubsub.schedules WHERE name = 'tick'`;
    const done = await t.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM slot) * 1000)::float8 AS ms FROM ticks`;
    const pending = await t.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM (payload->>'slot')::timestamptz) * 1000)::float8 AS ms
      FROM pgpubsub.notifications WHERE channel = 'tick'`;
    const all = [...done, ...pending].map((r) => r.ms).sort((x, y) => x - y);
    const expected: number[] = [];
    for (let ms = start!.ms + 1000; ms <= fence!.ms; ms += 1000) expected.push(ms);
    expect(all).toEqual(expected);
    expect(done.length).toBeGreaterThanOrEqual(5);
    expect(new Set(handled.map((r) => r.source))).toEqual(new Set(['fixture']));
  }, 90_000);
});

describe('schedules: catch-up after every listener was down', () => {
  // Every minute: a 1 h downtime has 59 missed slots and exactly 1 late one (the grace is 60 s).
  const latest = schedule('catch_latest', '* * * * *', { payload: { n: 1 } });
  const all = schedule('catch_all', '* * * * *', { catchUp: 'all' });
  const three = schedule('catch_three', '* * * * *', { catchUp: 3 });
  const none = schedule('catch_none', '* * * * *', { catchUp: 0 });

  it('drain() fires the policy: latest 1+1, all 59+1, 3 → 3+1, 0 → 0+1; handlers get slot and payload', async () => {
    for (const s of [latest, all, three, none]) {
      await install(s);
      await downFor(s.name, 3_600_000);
    }
    const seen: { name: string; slot: Date; payload: unknown }[] = [];
    const listener = createListener(t.db);
    for (const s of [latest, all, three, none]) {
      listener.on(s as AnySchedule, async (event) => {
        seen.push({ name: event.channel, slot: event.slot, payload: event.payload });
      });
    }
    const summary = await listener.drain();
    const count = (name: string) => seen.filter((e) => e.name === name).length;
    expect([count('catch_latest'), count('catch_all'), count('catch_three'), count('catch_none')]).toEqual([
      2, 60, 4, 1,
    ]);
    expect(summary.processed).toBe(67);
    expect(seen.find((e) => e.name === 'catch_latest')?.payload).toEqual({ n: 1 });
    expect(seen.find((e) => e.name === 'catch_all')?.payload).toBeNull();
    // Slots are whole minutes, each once, and the fence is the latest of them.
    const slots = seen.filter((e) => e.name === 'catch_all').map((e) => e.slot.getTime());
    expect(new Set(slots).size).toBe(60);
    expect(slots.every((ms) => ms % 60_000 === 0)).toBe(true);
    const [fence] = await t.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM last_slot) * 1000)::float8 AS ms FROM pgpubsub.schedules WHERE name = 'catch_all'`;
    expect(fence!.ms).toBe(Math.max(...slots));
    // A second drain finds nothing due (unless a new minute began, which fires exactly that slot).
    const again = await createListener(t.db)
      .on(all, async () => {})
      .drain();
    expect(again.processed).toBeLessThanOrEqual(1);
  });

  it('runners racing for the same slots: the compare-and-set fence stores each slot once', async () => {
    const race = schedule('race', '* * * * *', { catchUp: 'all' });
    await install(race);
    await downFor('race', 30 * 60_000);
    const runners = Array.from(
      { length: 8 },
      () => new ScheduleRunner(t.client({ max: 2 }), 'pgpubsub', ['race'], () => {}),
    );
    await Promise.all(runners.map((r) => r.fireDue()));
    const slots = await pendingOf('race');
    expect(slots.length).toBeGreaterThanOrEqual(30);
    expect(new Set(slots).size).toBe(slots.length);
  });

  it('status() and `drizzle-pgpubsub status` show each schedule with its last slot and next run', async () => {
    await install(schedule('shown', '*/5 * * * *', { timezone: 'Asia/Tokyo' }));
    await t.sql`UPDATE pgpubsub.schedules SET last_slot = '2026-01-01T00:07:00Z' WHERE name = 'shown'`;
    const report = await status(t.db);
    const entry = report.schedules.find((s) => s.name === 'shown');
    expect(entry).toMatchObject({ cron: '*/5 * * * *', timezone: 'Asia/Tokyo' });
    expect(entry!.lastSlot.toISOString()).toBe('2026-01-01T00:07:00.000Z');
    expect(entry!.nextRunAt!.toISOString()).toBe('2026-01-01T00:10:00.000Z');
    buildCli();
    try {
      const { code, stdout } = await runCli(['status'], { DATABASE_URL: t.url });
      expect(code).toBe(0);
      const line = stdout.split('\n').find((l) => l.startsWith('shown '));
      expect(line).toMatch(
        /^shown +\*\/5 \* \* \* \* +Asia\/Tokyo +2026-01-01T00:07:00\.000Z +2026-01-01T00:10:00\.000Z$/,
      );
      expect(stdout).toMatch(/^schedule +cron +timezone +last slot +next run$/m);
    } finally {
      removeCli();
    }
  }, 120_000);
});

describe('schedules: a listener refuses a schedule that is not installed', () => {
  it('start() and drain() throw SCHEDULE_MISSING naming the schedule and what to do', async () => {
    const ghost = schedule('ghost', '0 * * * *');
    const error = await createListener(drizzle(t.client({ max: 4 })))
      .on(ghost, async () => {})
      .start()
      .catch((e: unknown) => e);
    expect(isPgPubSubError(error, 'SCHEDULE_MISSING')).toBe(true);
    expect((error as Error).message).toContain('"ghost"');
    expect((error as Error).message).toContain('drizzle-pgpubsub generate');
  });
});
