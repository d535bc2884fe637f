import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { STATEMENT_BREAKPOINT } from '../src/generate/migration-folder.ts';
import { planGenerate, readRecordedState } from '../src/generate/plan.ts';
import { STORAGE_VERSION } from '../src/storage/notifications.ts';
import { CONFIG, makeApp, run, useScratchApps, writeFiles } from './fixtures/generate-app.ts';
import { useTestDatabase } from './support/db.ts';

useScratchApps();
const t = useTestDatabase();

const JOBS = (
  nightlyCron: string,
  withHourly: boolean,
) => `import { schedule } from 'drizzle-pgpubsub/schema';

export const nightly = schedule('nightly', '${nightlyCron}', { timezone: 'Europe/Berlin', payload: { kind: 'full' } });
${withHourly ? "export const hourly = schedule('hourly', '0 * * * *', { catchUp: 'all' });" : ''}
`;

/** Runs the SQL files generate wrote, as drizzle-kit migrate would. */
async function apply(written: string[]) {
  for (const file of written.filter((f) => f.endsWith('.sql'))) {
    for (const statement of readFileSync(file, 'utf8').split(STATEMENT_BREAKPOINT)) {
      await t.sql.unsafe(statement);
    }
  }
}

const installed = () =>
  t.sql<{ name: string; cron: string; timezone: string; payload: unknown; catch_up: number }[]>`
    SELECT name, cron, timezone, payload, catch_up FROM pgpubsub.schedules ORDER BY name`.then((rows) => [
    ...rows,
  ]);

describe('generate: schedules', () => {
  it('writes them, writes nothing the second time, rewrites a changed one and deletes a removed one', async () => {
    const dir = makeApp({ 'drizzle.config.ts': CONFIG, 'src/db/jobs.ts': JOBS('0 3 * * *', true) });
    const first = await run(dir);
    expect(first.plan).toMatchObject({ storage: 'create', added: ['hourly', 'nightly'], removed: [] });
    const sql = readFileSync(first.written.find((f) => f.endsWith('.sql'))!, 'utf8');
    expect(sql).toContain('-- drizzle-pgpubsub:schedule {"name":"hourly"');
    expect(sql).toContain('INSERT INTO "pgpubsub"."schedules"');
    await apply(first.written);
    expect(await installed()).toEqual([
      { name: 'hourly', cron: '0 * * * *', timezone: 'UTC', payload: null, catch_up: 1000 },
      {
        name: 'nightly',
        cron: '0 3 * * *',
        timezone: 'Europe/Berlin',
        payload: { kind: 'full' },
        catch_up: 1,
      },
    ]);

    const again = await run(dir);
    expect(again.written).toEqual([]);
    expect(again.plan.statements).toEqual([]);

    writeFiles(dir, { 'src/db/jobs.ts': JOBS('30 4 * * 1-5', true) });
    await t.sql`UPDATE pgpubsub.schedules SET last_slot = '2030-01-01T00:00:00Z' WHERE name = 'nightly'`;
    const changed = await run(dir);
    expect(changed.plan).toMatchObject({ storage: null, added: [], changed: ['nightly'], removed: [] });
    await apply(changed.written);
    expect((await installed()).find((r) => r.name === 'nightly')?.cron).toBe('30 4 * * 1-5');
    // The fence of a changed schedule is kept (here: later than the migration's time).
    const [fence] = await t.sql<{ iso: string }[]>`
      SELECT to_char(last_slot AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS iso FROM pgpubsub.schedules WHERE name = 'nightly'`;
    expect(fence?.iso).toBe('2030-01-01');

    writeFiles(dir, { 'src/db/jobs.ts': JOBS('30 4 * * 1-5', false) });
    const removed = await run(dir);
    expect(removed.plan).toMatchObject({ added: [], changed: [], removed: ['hourly'] });
    await apply(removed.written);
    expect((await installed()).map((r) => r.name)).toEqual(['nightly']);
    expect((await run(dir)).written).toEqual([]);
  });

  it('an install at storage version 3 upgrades: the schedules table is created, nothing else changes', async () => {
    const state = readRecordedState([
      {
        name: '0001_pgpubsub',
        path: 'drizzle/0001_pgpubsub.sql',
        sql: '-- drizzle-pgpubsub:storage {"version":3,"schema":"pgpubsub"}\nSELECT 1;',
      } as never,
    ]);
    const plan = planGenerate({ channels: [], state });
    expect(plan.storage).toBe('upgrade');
    expect(plan.header).toContain(
      `-- drizzle-pgpubsub:storage {"version":${STORAGE_VERSION},"schema":"pgpubsub"}`,
    );
    // A version-3 database: the template without the schedules table, with a pending notification.
    await t.sql`DROP TABLE pgpubsub.schedules`;
    await t.sql`INSERT INTO pgpubsub.notifications (channel, payload) VALUES ('kept', '{"a":1}')`;
    for (const statement of plan.statements) await t.sql.unsafe(statement);
    const [table] = await t.sql<
      { ok: boolean }[]
    >`SELECT to_regclass('pgpubsub.schedules') IS NOT NULL AS ok`;
    expect(table?.ok).toBe(true);
    const kept = await t.sql`SELECT payload FROM pgpubsub.notifications WHERE channel = 'kept'`;
    expect(kept.map((r) => r.payload)).toEqual([{ a: 1 }]);
  });
});
