import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PgPubSubError } from '../errors.ts';
import type { InstalledKit } from './kit-version.ts';

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
  | {
      layout: 'folders';
      out: string;
      migrations: ExistingMigration[];
      /** Every `<folder>/snapshot.json`, in folder-name order (drizzle-kit's own; ours have none). */
      snapshotPaths: string[];
    };

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
  /**
   * drizzle-kit 1.0 layout: the end (epoch ms) of the second the new folder is named after. A folder
   * another tool names in that second may sort before ours (same timestamp, name order), so
   * `generate` returns only once it has passed.
   */
  sortsBeforeFoldersFrom?: number;
}

export const V1_FOLDER = /^(\d{14})_.+/;
const OLD_FOLDER = /^\d{14}$/;
export const EMPTY_META = { columns: {}, schemas: {}, tables: {} };

/** A MIGRATIONS_INVALID error. */
export function invalid(message: string, cause?: unknown): PgPubSubError {
  return new PgPubSubError('MIGRATIONS_INVALID', message, cause === undefined ? undefined : { cause });
}

/** Parses a JSON file; MIGRATIONS_INVALID when it is not JSON. */
export function readJson(path: string): unknown {
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
export function readMigrationFolder(out: string, kit?: InstalledKit): MigrationFolder {
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
      const snapshotPaths: string[] = [];
      for (const name of v1) {
        const path = join(out, name, 'migration.sql');
        if (existsSync(path)) migrations.push({ name, path, sql: readFileSync(path, 'utf8') });
        const snapshot = join(out, name, 'snapshot.json');
        if (existsSync(snapshot)) snapshotPaths.push(snapshot);
      }
      return { layout: 'folders', out, migrations, snapshotPaths };
    }
    if (names.some((name) => OLD_FOLDER.test(name) && isDirectory(join(out, name)))) {
      throw invalid(
        `${out} uses drizzle-kit's old folder format (folders named by timestamp only). Run \`drizzle-kit up\` first.`,
      );
    }
    // An empty folder gets the layout of the installed drizzle-kit (0.x when none is installed).
    if (kit && kit.major >= 1) return { layout: 'folders', out, migrations: [], snapshotPaths: [] };
    return { layout: 'journal', out, journal: null, snapshotPath: null, migrations: [] };
  }
  if (kit && kit.major >= 1) {
    throw invalid(
      `${out} has drizzle-kit 0.x's meta/_journal.json, but drizzle-kit ${kit.version} is installed, and its migrator refuses that layout. Run \`npx drizzle-kit up\` to convert the folder, then run generate again.`,
    );
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

/** `path` relative to `cwd` for messages (absolute when outside it). */
export function displayPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}
