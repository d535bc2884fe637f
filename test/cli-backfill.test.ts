import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { describe, expect, it } from 'vitest';
import { backfill, triggerChannel } from '../src/index.ts';
import { CLI, CONFIG, makeApp, spawnNode, useScratchApps } from './fixtures/generate-app.ts';
import { installChannels } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';

// `drizzle-pgpubsub backfill <channel>`: reads the channel from the drizzle config's schema files,
// prints a summary, exits 0 when every row is enqueued; usage errors exit 2, config problems 78.
const bfItems = pgTable('bf_items', { id: serial().primaryKey(), qty: integer().notNull(), label: text() });
const bfEvents = triggerChannel(bfItems, { on: ['insert', 'update'] });

const t = useTestDatabase([
  'CREATE TABLE bf_items (id serial PRIMARY KEY, qty integer NOT NULL, label text)',
  'INSERT INTO bf_items (qty) SELECT g FROM generate_series(1, 20) g',
]);
useScratchApps({ cli: true });

const SCHEMA_TS = `import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import * as v from 'valibot';
import { channel, triggerChannel } from 'drizzle-pgpubsub/schema';
export const bfItems = pgTable('bf_items', { id: serial().primaryKey(), qty: integer().notNull(), label: text() });
export const bfEvents = triggerChannel(bfItems, { on: ['insert', 'update'] });
export const mails = channel('mails', v.object({ to: v.string() }));
`;

const snapshotCount = async () =>
  Number(
    (
      await t.sql`SELECT count(*)::int AS n FROM pgpubsub.notifications WHERE channel = 'bf_items' AND op = 'snapshot'`
    )[0]?.n,
  );

describe('drizzle-pgpubsub backfill', () => {
  it('enqueues the rows, prints a summary, resumes, and refuses bad input with the documented exit codes', async () => {
    await installChannels(t.sql, [bfEvents]);
    const app = makeApp({ 'drizzle.config.ts': CONFIG, 'src/db/schema.ts': SCHEMA_TS });
    const run = (...args: string[]) => spawnNode([CLI, 'backfill', ...args], app, { DATABASE_URL: t.url });

    const ok = await run('bf_items', '--batch-size', '7', '--where', 'id > 5');
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(
      /^Backfilled channel "bf_items": 15 snapshot events in 3 transactions, .* rows\/s\)\.\n$/,
    );
    expect(ok.code).toBe(0);
    expect(await snapshotCount()).toBe(15);

    // An unfinished run (stopped after one page) is resumed by the same command.
    await backfill(t.db, bfEvents, { batchSize: 4, maxPages: 1 });
    const resumed = await run('bf_items', '--batch-size', '4', '--json');
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({
      channel: 'bf_items',
      rows: 16,
      totalRows: 20,
      resumed: true,
      finished: true,
    });
    expect(await snapshotCount()).toBe(15 + 20);

    // Stop an unfinished run without a condition, then ask for one.
    await backfill(t.db, bfEvents, { maxPages: 1, batchSize: 1 });
    const [conflict, none, unknown, custom] = await Promise.all([
      run('bf_items', '--where', 'qty > 1'),
      run(),
      run('nope'),
      run('mails'),
    ]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(
      /error: An unfinished backfill of channel "bf_items" used no where condition.*--restart/,
    );
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(
      /backfill needs the name of a trigger channel\.[\s\S]*Usage: drizzle-pgpubsub backfill <channel>/,
    );
    expect(unknown.code).toBe(78);
    expect(unknown.stderr).toMatch(/error: No channel named "nope" .* Trigger channels: bf_items\./);
    expect(custom.code).toBe(78);
    expect(custom.stderr).toMatch(/error: Channel "mails" is a custom channel/);
    const restarted = await run('bf_items', '--where', 'qty > 1', '--restart');
    expect(restarted.stdout).toMatch(/^Backfilled channel "bf_items": 19 snapshot events in 1 transaction, /);
    expect(restarted.code).toBe(0);
  }, 120_000);
});
