import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PgPubSubError } from '../errors.ts';

/** How drizzle-kit names migrations (`migrations.prefix` in drizzle.config). */
export type MigrationPrefix = 'index' | 'timestamp' | 'supabase' | 'unix' | 'none';

/** Every value `migrations.prefix` may take; `index` is drizzle-kit's default. */
export const MIGRATION_PREFIXES: readonly MigrationPrefix[] = [
  'index',
  'timestamp',
  'supabase',
  'unix',
  'none',
];

/** What drizzle-kit puts between two statements; its migrator splits files on it. */
export const STATEMENT_BREAKPOINT = '\n--> statement-breakpoint\n';

/** One entry of drizzle-kit's `meta/_journal.json` (0.x layout). Unknown fields are kept. */
export interface JournalEntry {
  idx: number;
  version: string;
  when: number;
  tag: string;
  breakpoints: boolean;
  [key: string]: unknown;
}

/** drizzle-kit's `meta/_journal.json` (0.x layout). */
export interface Journal {
  version: string;
  dialect: string;
  entries: JournalEntry[];
  [key: string]: unknown;
}

/** A migration that exists, listed in the order the migrator applies it. */
export interface ExistingMigration {
  /** Journal tag (0.x layout) or folder name (v1 layout). */
  name: string;
  /** Absolute path of the SQL file. */
  path: string;
  sql: string;
}

/**
 * A drizzle-kit migrations folder as found on disk. `journal`: drizzle-kit 0.x (`meta/_journal.json`,
 * `<tag>.sql`, `meta/<prefix>_snapshot.json`), also used for an empty or missing folder. `folders`:
 * drizzle-kit 1.0 (`<YYYYMMDDHHMMSS>_<name>/migration.sql`, no journal).
 */
export type MigrationFolder =
  | {
      layout: 'journal';
      out: string;
      /** `null` when the folder has no journal yet (it is created on write). */
      journal: Journal | null;
      /** Newest snapshot, as drizzle-kit picks it: last file of `meta/` by name not starting with `_`. */
      snapshotPath: string | null;
      migrations: ExistingMigration[];
    }
  | { layout: 'folders'; out: string; migrations: ExistingMigration[] };

/** One file that {@link writeMigration} will write. */
export interface PlannedFile {
  path: string;
  content: string;
  /** `create`: a new file (never overwrites); `replace`: the journal, rewritten with one more entry. */
  mode: 'create' | 'replace';
}

/** Everything {@link writeMigration} will do, computed (and validated) before anything is written. */
export interface MigrationPlan {
  /** The SQL file of the new migration. */
  migrationPath: string;
  /** Folders to create first. */
  directories: string[];
  files: PlannedFile[];
}

const V1_FOLDER = /^(\d{14})_.+/;
const OLD_FOLDER = /^\d{14}$/;
const EMPTY_META = { columns: {}, schemas: {}, tables: {} };

function invalid(message: string, cause?: unknown): PgPubSubError {
  return new PgPubSubError('MIGRATIONS_INVALID', message, cause === undefined ? undefined : { cause });
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw invalid(
      `${path} is not valid JSON (${(error as Error).message}). Restore it from version control.`,
      error,
    );
  }
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function parseJournal(path: string): Journal {
  const journal = readJson(path) as Journal;
  if (typeof journal !== 'object' || journal === null || !Array.isArray(journal.entries)) {
    throw invalid(
      `${path} is not a drizzle-kit journal (no "entries" array). Restore it from version control.`,
    );
  }
  if (journal.dialect !== 'postgresql') {
    throw invalid(
      `${path} belongs to dialect "${String(journal.dialect)}"; drizzle-pgpubsub needs a postgresql migrations folder.`,
    );
  }
  for (const entry of journal.entries) {
    if (typeof entry?.tag !== 'string' || typeof entry.idx !== 'number' || typeof entry.when !== 'number') {
      throw invalid(
        `${path} has a malformed entry ${JSON.stringify(entry)}. Restore it from version control.`,
      );
    }
  }
  return journal;
}

/**
 * Reads a drizzle-kit `out` folder: its layout and every migration's SQL in apply order (journal
 * order for 0.x; folder-name order for the v1 layout). Never writes.
 */
export function readMigrationFolder(out: string): MigrationFolder {
  if (existsSync(out) && !isDirectory(out)) {
    throw invalid(`The migrations folder ${out} is a file. Point \`out\` in drizzle.config at a folder.`);
  }
  const meta = join(out, 'meta');
  const journalPath = join(meta, '_journal.json');
  const names = existsSync(out) ? readdirSync(out).sort() : [];
  if (!existsSync(journalPath)) {
    const v1 = names.filter((name) => V1_FOLDER.test(name) && isDirectory(join(out, name)));
    if (v1.length > 0) {
      const migrations: ExistingMigration[] = [];
      for (const name of v1) {
        const path = join(out, name, 'migration.sql');
        if (existsSync(path)) migrations.push({ name, path, sql: readFileSync(path, 'utf8') });
      }
      return { layout: 'folders', out, migrations };
    }
    if (names.some((name) => OLD_FOLDER.test(name) && isDirectory(join(out, name)))) {
      throw invalid(
        `${out} uses drizzle-kit's old folder format (folders named by timestamp only). Run \`drizzle-kit up\` first.`,
      );
    }
    return { layout: 'journal', out, journal: null, snapshotPath: null, migrations: [] };
  }
  const journal = parseJournal(journalPath);
  const migrations = journal.entries.map((entry) => {
    const path = join(out, `${entry.tag}.sql`);
    if (!existsSync(path)) {
      throw invalid(
        `${journalPath} lists migration "${entry.tag}", but ${path} does not exist. Restore it, or remove the entry with \`drizzle-kit drop\`.`,
      );
    }
    return { name: entry.tag, path, sql: readFileSync(path, 'utf8') };
  });
  // drizzle-kit's own choice of the newest snapshot (prepareOutFolder): sorted file names in meta/.
  const snapshots = readdirSync(meta)
    .filter((name) => !name.startsWith('_'))
    .sort();
  const last = snapshots.at(-1);
  return { layout: 'journal', out, journal, snapshotPath: last ? join(meta, last) : null, migrations };
}

/** `YYYYMMDDHHMMSS` in UTC, as drizzle-kit's `timestamp` prefix and v1 folder names use it. */
export function timestampPrefix(date: Date): string {
  return date.toISOString().replace('T', '').replaceAll('-', '').replaceAll(':', '').slice(0, 14);
}

function prefixFor(mode: MigrationPrefix, idx: number, date: Date): string {
  switch (mode) {
    case 'index':
      return idx.toFixed(0).padStart(4, '0');
    case 'timestamp':
    case 'supabase':
      return timestampPrefix(date);
    case 'unix':
      return String(Math.floor(date.getTime() / 1000));
    case 'none':
      return '';
  }
}

/**
 * The file content of a migration: comment lines (never inside a statement), then the statements
 * joined by drizzle-kit's breakpoint marker, each ending with `;`.
 */
export function migrationSql(header: readonly string[], statements: readonly string[]): string {
  const body = statements.map((s) => (s.trimEnd().endsWith(';') ? s.trimEnd() : `${s.trimEnd()};`));
  return [...header, body.join(STATEMENT_BREAKPOINT)].join('\n') + '\n';
}

/** The snapshot drizzle-kit 0.31 starts from when a folder has none (its `dryPg`, as `--custom` saves it). */
export function emptySnapshot(): Record<string, unknown> {
  return {
    id: '00000000-0000-0000-0000-000000000000',
    prevId: '',
    version: '7',
    dialect: 'postgresql',
    tables: {},
    enums: {},
    schemas: {},
    views: {},
    sequences: {},
    roles: {},
    policies: {},
    _meta: EMPTY_META,
  };
}

/** What `drizzle-kit generate --custom` saves as the new snapshot: the previous one under a new id. */
export function copySnapshot(previous: Record<string, unknown>): Record<string, unknown> {
  const { id, prevId: _prevId, ...rest } = previous;
  return { id: randomUUID(), prevId: id, ...rest, _meta: EMPTY_META };
}

function planJournal(
  folder: Extract<MigrationFolder, { layout: 'journal' }>,
  content: string,
  name: string,
  prefix: MigrationPrefix,
  now: Date,
): MigrationPlan {
  const { out } = folder;
  const meta = join(out, 'meta');
  const journal: Journal = folder.journal
    ? structuredClone(folder.journal)
    : { version: '7', dialect: 'postgresql', entries: [] };
  const last = journal.entries.at(-1);
  const idx = last ? last.idx + 1 : 0;
  const taken = new Set(journal.entries.map((entry) => entry.tag));
  // Keep tags and snapshot names unique where a prefix can repeat (same second, or `none`).
  let date = now;
  let pfx = prefixFor(prefix, idx, date);
  if (prefix === 'timestamp' || prefix === 'supabase' || prefix === 'unix') {
    const used = new Set(journal.entries.map((entry) => entry.tag.split('_')[0]));
    while (used.has(pfx) || existsSync(join(meta, `${pfx}_snapshot.json`))) {
      date = new Date(date.getTime() + 1000);
      pfx = prefixFor(prefix, idx, date);
    }
  }
  let tag = `${pfx}_${name}`;
  for (let n = 2; taken.has(tag) || existsSync(join(out, `${tag}.sql`)); n++) tag = `${pfx}_${name}_${n}`;

  const snapshotPath = join(meta, `${pfx}_snapshot.json`);
  const files: PlannedFile[] = [{ path: join(out, `${tag}.sql`), content, mode: 'create' }];
  if (existsSync(snapshotPath)) {
    // `none` prefix: every snapshot is meta/_snapshot.json, which drizzle-kit never reads (it skips
    // names starting with `_`); keep the existing one rather than overwrite it.
    if (prefix !== 'none') {
      throw invalid(
        `${snapshotPath} already exists although ${join(meta, '_journal.json')} ends at entry ${last?.idx ?? '(none)'}. The folder is inconsistent: restore it from version control.`,
      );
    }
  } else {
    const previous = folder.snapshotPath
      ? (readJson(folder.snapshotPath) as Record<string, unknown>)
      : emptySnapshot();
    if (typeof previous !== 'object' || previous === null || typeof previous.id !== 'string') {
      throw invalid(`${folder.snapshotPath} is not a drizzle-kit snapshot (no "id"). Restore it.`);
    }
    files.push({
      path: snapshotPath,
      content: JSON.stringify(copySnapshot(previous), null, 2),
      mode: 'create',
    });
  }
  journal.entries.push({
    idx,
    version: '7',
    when: Math.max(now.getTime(), (last?.when ?? 0) + 1),
    tag,
    breakpoints: true,
  });
  files.push({
    path: join(meta, '_journal.json'),
    content: JSON.stringify(journal, null, 2),
    mode: 'replace',
  });
  return { migrationPath: files[0]!.path, directories: [meta], files };
}

function planFolders(
  folder: Extract<MigrationFolder, { layout: 'folders' }>,
  content: string,
  name: string,
  now: Date,
): MigrationPlan {
  // Sort after every existing folder, so a pending migration of ours never runs before an older one.
  const existing = readdirSync(folder.out)
    .map((entry) => V1_FOLDER.exec(entry)?.[1])
    .filter((ts): ts is string => ts !== undefined)
    .sort();
  let date = now;
  const newest = existing.at(-1);
  if (newest && timestampPrefix(date) <= newest) {
    const [y, mo, d, h, mi, s] = [0, 4, 6, 8, 10, 12].map((at, i) =>
      Number(newest.slice(at, at + (i === 0 ? 4 : 2))),
    ) as [number, number, number, number, number, number];
    date = new Date(Date.UTC(y, mo - 1, d, h, mi, s) + 1000);
  }
  const dir = join(folder.out, `${timestampPrefix(date)}_${name}`);
  const migrationPath = join(dir, 'migration.sql');
  return { migrationPath, directories: [dir], files: [{ path: migrationPath, content, mode: 'create' }] };
}

/**
 * Plans a new migration named `name` holding `content`, exactly as `drizzle-kit generate --custom`
 * would lay it out: 0.x journal layout (`<tag>.sql`, a snapshot copy with a fresh id, a journal entry
 * whose `when` is later than the last one) or v1 layout (`<YYYYMMDDHHMMSS>_<name>/migration.sql`).
 */
export function planMigration(
  folder: MigrationFolder,
  content: string,
  options: { name: string; prefix: MigrationPrefix; now?: Date },
): MigrationPlan {
  const now = options.now ?? new Date();
  return folder.layout === 'journal'
    ? planJournal(folder, content, options.name, options.prefix, now)
    : planFolders(folder, content, options.name, now);
}

/**
 * Writes a {@link MigrationPlan}: the SQL file first and the journal last, so an interrupted run
 * never leaves the journal pointing at a missing file. New files are created exclusively: an
 * existing migration is never overwritten. Returns the paths written.
 */
export function writeMigration(plan: MigrationPlan): string[] {
  for (const dir of plan.directories) mkdirSync(dir, { recursive: true });
  for (const file of plan.files) {
    try {
      writeFileSync(file.path, file.content, { flag: file.mode === 'create' ? 'wx' : 'w' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
        throw invalid(
          `${file.path} appeared while writing; another generate is running? Nothing overwritten.`,
        );
      }
      throw error;
    }
  }
  return plan.files.map((file) => file.path);
}

/** `path` relative to `cwd` for messages (absolute when outside it). */
export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}
