/** Planning and writing one migration the way drizzle-kit's `generate --custom` does (SQL file, journal entry, snapshot copy). */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  EMPTY_META,
  invalid,
  type Journal,
  type MigrationFolder,
  type MigrationPlan,
  type MigrationPrefix,
  type PlannedFile,
  readJson,
  STATEMENT_BREAKPOINT,
  V1_FOLDER,
} from './migration-folder.ts';

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
  const existing = (existsSync(folder.out) ? readdirSync(folder.out) : [])
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
  return {
    migrationPath,
    directories: [dir],
    files: [{ path: migrationPath, content, mode: 'create' }],
    sortsBeforeFoldersFrom: Math.floor(date.getTime() / 1000) * 1000 + 1000,
  };
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
