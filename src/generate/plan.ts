import { createHash } from 'node:crypto';
import { is } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import type { ColumnCasing as Casing } from '../casing.ts';
import { type AnyChannel, assertChannelName, isChannel, isTriggerChannel } from '../channel.ts';
import { PgPubSubError, pgPubSubErrorCode } from '../errors.ts';
import { isSchedule } from '../schedule.ts';
import { DEFAULT_SCHEMA, STORAGE_VERSION, storageMigrationSql } from '../storage/notifications.ts';
import { deleteScheduleSql, type ScheduleSpec, upsertScheduleSql } from '../storage/schedules.ts';
import { NOTIFICATIONS_TABLE, WAKEUPS_TABLE } from '../storage/sql-names.ts';
import {
  createTriggerSql,
  dropTriggerSql,
  resolveTriggerSpec,
  type TriggerSpec,
} from '../storage/trigger-sql.ts';
import type { ExistingMigration } from './migration-folder.ts';

/** Every marker line starts with this; markers live only in the leading comment block of a migration. */
export const MARKER = '-- drizzle-pgpubsub:';

const HEADER =
  '-- Written by `drizzle-pgpubsub generate`. Do not edit: change your channels and run it again.';

/** A module loaded from one schema file. */
export interface LoadedModule {
  /** The file, as it should appear in messages. */
  file: string;
  exports: Record<string, unknown>;
}

/** A channel found among the exports of the schema files. */
export interface FoundChannel {
  channel: AnyChannel;
  /** `file` and export name of its first appearance. */
  file: string;
  exportName: string;
}

/** What the existing migrations say is installed for one trigger channel. */
export interface RecordedChannel {
  name: string;
  hash: string;
  tableSchema: string;
  table: string;
  /** Name (journal tag or folder) of the migration that recorded it. */
  migration: string;
}

/** What the existing migrations say is installed for one schedule. */
export interface RecordedSchedule {
  name: string;
  hash: string;
  migration: string;
}

/** The installed state, rebuilt from the markers of existing migrations in apply order. */
export interface RecordedState {
  storage: { version: number; schema: string; migration: string } | null;
  channels: Map<string, RecordedChannel>;
  /** Installed schedules (absent: none). */
  schedules?: Map<string, RecordedSchedule>;
}

/** The outcome of comparing the declared channels with the recorded state. */
export interface GeneratePlan {
  /** The pg schema of the notifications table and trigger functions. */
  schema: string;
  /** `create`: first migration; `upgrade`: storage of an older version is recorded. */
  storage: 'create' | 'upgrade' | null;
  added: string[];
  changed: string[];
  /** Channels now on another table (their old triggers are dropped first). */
  moved: string[];
  removed: string[];
  /** All channels declared (trigger and custom). */
  channels: number;
  /** The trigger channels this migration (re)installs, as recorded in its markers. */
  installed: Omit<RecordedChannel, 'migration'>[];
  /** Every declared trigger channel, resolved, by name. */
  specs: Map<string, TriggerSpec>;
  /** Comment lines that open the migration, markers included. */
  header: string[];
  statements: string[];
}

const where = (found: Pick<FoundChannel, 'file' | 'exportName'>) =>
  `export \`${found.exportName}\` of ${found.file}`;

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Finds every exported channel in `modules`. The same channel object exported twice (a re-export) counts
 * once; two different channels with one name throw `DUPLICATE_CHANNEL`. Also refuses re-exports of
 * drizzle-pgpubsub's own tables, which drizzle-kit would then try to create a second time.
 */
export function collectChannels(modules: readonly LoadedModule[], schema = DEFAULT_SCHEMA): FoundChannel[] {
  const seen = new Map<AnyChannel, FoundChannel>();
  const named = new Map<string, FoundChannel>();
  for (const mod of modules) {
    for (const [exportName, value] of Object.entries(mod.exports)) {
      if (is(value, PgTable)) {
        const config = getTableConfig(value as PgTable);
        if (
          (config.schema === schema || config.schema === DEFAULT_SCHEMA) &&
          (config.name === NOTIFICATIONS_TABLE || config.name === WAKEUPS_TABLE)
        ) {
          throw new PgPubSubError(
            'CONFIG_INVALID',
            `${where({ file: mod.file, exportName })} is drizzle-pgpubsub's table "${config.schema}"."${config.name}". Remove that export from your schema files: \`drizzle-pgpubsub generate\` creates the table, and drizzle-kit would try to create it again. Import it from 'drizzle-pgpubsub' where you query it.`,
          );
        }
        continue;
      }
      if (!isChannel(value) || seen.has(value)) continue;
      const found: FoundChannel = { channel: value, file: mod.file, exportName };
      try {
        assertChannelName(value.name);
      } catch (error) {
        throw new PgPubSubError('INVALID_CHANNEL_NAME', `${where(found)}: ${(error as Error).message}`);
      }
      const other = named.get(value.name);
      if (other) {
        throw new PgPubSubError(
          'DUPLICATE_CHANNEL',
          `Two different channels are named "${value.name}": ${where(other)} and ${where(found)}. Give one of them another \`name\`, or export the same channel object from both files.`,
        );
      }
      seen.set(value, found);
      named.set(value.name, found);
    }
  }
  return [...named.values()].sort((a, b) => byName(a.channel.name, b.channel.name));
}

function parseMarker(line: string, migration: ExistingMigration): [string, Record<string, unknown>] {
  const rest = line.slice(MARKER.length);
  const space = rest.indexOf(' ');
  const kind = space < 0 ? rest : rest.slice(0, space);
  try {
    const value = JSON.parse(rest.slice(space + 1)) as Record<string, unknown>;
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return [kind, value];
  } catch (error) {
    throw new PgPubSubError(
      'MIGRATIONS_INVALID',
      `${migration.path} has a malformed drizzle-pgpubsub marker line: ${line}. Restore the file from version control: migrations must not be edited.`,
      { cause: error },
    );
  }
}

/** The marker lines of one migration: only those in the comment block that opens the file. */
export function markerLines(sql: string): string[] {
  const lines: string[] = [];
  for (const line of sql.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('--')) break;
    if (trimmed.startsWith(MARKER)) lines.push(trimmed);
  }
  return lines;
}

/**
 * Rebuilds what earlier `drizzle-pgpubsub generate` runs installed from the marker comments of
 * `migrations`, in apply order. No separate state file: the migrations are the state.
 */
export function readRecordedState(migrations: readonly ExistingMigration[]): RecordedState {
  const state: RecordedState = { storage: null, channels: new Map(), schedules: new Map() };
  for (const migration of migrations) {
    for (const line of markerLines(migration.sql)) {
      const [kind, value] = parseMarker(line, migration);
      if (kind === 'storage' && typeof value.version === 'number' && typeof value.schema === 'string') {
        state.storage = { version: value.version, schema: value.schema, migration: migration.name };
      } else if (
        kind === 'channel' &&
        typeof value.name === 'string' &&
        typeof value.hash === 'string' &&
        typeof value.tableSchema === 'string' &&
        typeof value.table === 'string'
      ) {
        const { name, hash, tableSchema, table } = value;
        state.channels.set(name, { name, hash, tableSchema, table, migration: migration.name });
      } else if (kind === 'drop' && typeof value.name === 'string') {
        state.channels.delete(value.name);
      } else if (kind === 'schedule' && typeof value.name === 'string' && typeof value.hash === 'string') {
        state.schedules!.set(value.name, { name: value.name, hash: value.hash, migration: migration.name });
      } else if (kind === 'unschedule' && typeof value.name === 'string') {
        state.schedules!.delete(value.name);
      } else {
        throw new PgPubSubError(
          'MIGRATIONS_INVALID',
          `${migration.path} has an unknown drizzle-pgpubsub marker: ${line}. It was written by a newer drizzle-pgpubsub: upgrade this package.`,
        );
      }
    }
  }
  return state;
}

/** Hash of everything a channel installs: any change of its SQL (options, table, library) changes it. */
export function channelHash(spec: TriggerSpec, schema: string): string {
  return createHash('sha256').update(createTriggerSql(spec, schema).join('\n')).digest('hex').slice(0, 16);
}

function resolve(found: FoundChannel, casing: Casing | undefined): TriggerSpec {
  try {
    return resolveTriggerSpec(found.channel as Extract<AnyChannel, { kind: 'trigger' }>, casing);
  } catch (error) {
    const code = pgPubSubErrorCode(error);
    if (!code) throw error;
    throw new PgPubSubError(code, `${(error as Error).message} (declared as ${where(found)})`, {
      cause: error,
    });
  }
}

/**
 * Compares the declared `channels` with the `state` recorded by earlier migrations and returns the
 * migration to write (empty `statements`: nothing to do). Deterministic: channels sorted by name.
 */
export function planGenerate(input: {
  channels: readonly FoundChannel[];
  state: RecordedState;
  /** Requested pg schema; defaults to the recorded one, then `pgpubsub`. */
  schema?: string | undefined;
  casing?: Casing | undefined;
}): GeneratePlan {
  const { state } = input;
  const recordedSchema = state.storage?.schema;
  const schema = input.schema ?? recordedSchema ?? DEFAULT_SCHEMA;
  if (recordedSchema !== undefined && recordedSchema !== schema) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `The notifications table lives in schema "${recordedSchema}" (created by migration ${state.storage!.migration}), not "${schema}". Run generate with --schema ${JSON.stringify(recordedSchema)} (or without --schema); moving the storage to another schema is not supported.`,
    );
  }
  if (state.storage && state.storage.version > STORAGE_VERSION) {
    throw new PgPubSubError(
      'MIGRATIONS_INVALID',
      `Migration ${state.storage.migration} was written by a newer drizzle-pgpubsub (storage version ${state.storage.version}; this one knows ${STORAGE_VERSION}). Upgrade drizzle-pgpubsub.`,
    );
  }
  const storage =
    state.storage === null ? 'create' : state.storage.version < STORAGE_VERSION ? 'upgrade' : null;

  const desired = new Map<string, { spec: TriggerSpec; hash: string }>();
  for (const found of input.channels) {
    if (!isTriggerChannel(found.channel)) continue;
    const spec = resolve(found, input.casing);
    // drizzle splits migration files on this marker, wherever it stands (names included).
    const marker = '--> statement-breakpoint';
    const inWhen = spec.when?.includes(marker);
    if (
      inWhen ||
      [spec.channel, spec.tableSchema, spec.table, ...spec.columns].some((n) => n.includes(marker))
    ) {
      throw new PgPubSubError(
        'INVALID_CHANNEL',
        `The ${inWhen ? '`when`' : 'name (channel, table or column)'} of ${where(found)} contains "${marker}", which would split the trigger function in two when the migration runs. ${inWhen ? 'Rephrase the condition.' : 'Rename it.'}`,
      );
    }
    desired.set(spec.channel, { spec, hash: channelHash(spec, schema) });
  }

  const schedules = new Map<string, { sql: string; hash: string }>();
  for (const found of input.channels) {
    if (!isSchedule(found.channel)) continue;
    const { cron, timezone, payload, catchUp } = found.channel.schedule;
    const spec: ScheduleSpec = { name: found.channel.name, cron, timezone, payload, catchUp };
    const sql = upsertScheduleSql(spec, schema);
    if (sql.includes('--> statement-breakpoint')) {
      throw new PgPubSubError(
        'INVALID_SCHEDULE',
        `The name or payload of ${where(found)} contains "--> statement-breakpoint", which would split the migration. Change it.`,
      );
    }
    schedules.set(spec.name, { sql, hash: createHash('sha256').update(sql).digest('hex').slice(0, 16) });
  }

  const header = [HEADER];
  const statements: string[] = [];
  if (storage) {
    header.push(`${MARKER}storage ${JSON.stringify({ version: STORAGE_VERSION, schema })}`);
    statements.push(...storageMigrationSql(schema));
  }
  const removed = [...state.channels.keys()].filter((name) => !desired.has(name)).sort(byName);
  for (const name of removed) {
    header.push(`${MARKER}drop ${JSON.stringify({ name })}`);
    const { tableSchema, table } = state.channels.get(name)!;
    statements.push(...dropTriggerSql({ channel: name, tableSchema, table }, schema));
  }
  const added: string[] = [];
  const changed: string[] = [];
  const moved: string[] = [];
  const installed: GeneratePlan['installed'] = [];
  for (const [name, { spec, hash }] of [...desired].sort(([a], [b]) => byName(a, b))) {
    const old = state.channels.get(name);
    if (old?.hash === hash) continue;
    if (!old) added.push(name);
    else if (old.tableSchema !== spec.tableSchema || old.table !== spec.table) {
      moved.push(name);
      statements.push(
        ...dropTriggerSql({ channel: name, tableSchema: old.tableSchema, table: old.table }, schema),
      );
    } else changed.push(name);
    const marker = { name, hash, tableSchema: spec.tableSchema, table: spec.table };
    installed.push(marker);
    header.push(`${MARKER}channel ${JSON.stringify(marker)}`);
    statements.push(...createTriggerSql(spec, schema));
  }
  const recordedSchedules = state.schedules ?? new Map<string, RecordedSchedule>();
  for (const name of [...recordedSchedules.keys()].filter((n) => !schedules.has(n)).sort(byName)) {
    removed.push(name);
    header.push(`${MARKER}unschedule ${JSON.stringify({ name })}`);
    statements.push(deleteScheduleSql(name, schema));
  }
  for (const [name, { sql, hash }] of [...schedules].sort(([a], [b]) => byName(a, b))) {
    const old = recordedSchedules.get(name);
    if (old?.hash === hash) continue;
    (old ? changed : added).push(name);
    header.push(`${MARKER}schedule ${JSON.stringify({ name, hash })}`);
    statements.push(sql);
  }
  return {
    schema,
    storage,
    added,
    changed,
    moved,
    removed,
    channels: input.channels.length,
    installed,
    specs: new Map([...desired].map(([name, { spec }]) => [name, spec])),
    header,
    statements,
  };
}
