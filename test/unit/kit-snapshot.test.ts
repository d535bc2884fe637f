/**
 * drizzle-kit's newest snapshot as `generate`'s order check reads it (src/generate/kit-snapshot.ts):
 * the 1.0 folder layout's base + diff snapshots, rebuilt along `prevIds` as drizzle-kit 1.0 does. The
 * real drizzle-kit 1.0 writes these files in test/schema-evolution.test.ts (CI's drizzle-orm 1.0 leg).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { latestSnapshot } from '../../src/generate/kit-snapshot.ts';
import { readMigrationFolder } from '../../src/generate/migration-folder.ts';
import { makeApp, useScratchApps } from '../fixtures/generate-app.ts';

useScratchApps();

const ORIGIN = '00000000-0000-0000-0000-000000000000';
const table = (schema: string, name: string) => ({ schema, name, isRlsEnabled: false, entityType: 'tables' });
const column = (schema: string, t: string, name: string) => ({
  schema,
  table: t,
  name,
  type: 'integer',
  typeSchema: null,
  notNull: false,
  dimensions: 0,
  default: null,
  generated: null,
  identity: null,
  entityType: 'columns',
});
const key = (type: string, ...identity: string[]) => `${type}\0${JSON.stringify(identity)}`;
const base = (id: string, ddl: object[]) =>
  JSON.stringify({
    type: 'base',
    version: '9',
    dialect: 'postgres',
    id,
    prevIds: [ORIGIN],
    ddl,
    footprints: [],
  });
const diff = (id: string, prevIds: string[], deltas: object[]) =>
  JSON.stringify({ type: 'diff', version: '9', dialect: 'postgres', id, prevIds, deltas, footprints: [] });

/** A 1.0 folder: `[folder name, snapshot.json content or null]`, each with a migration.sql. */
function folder(entries: [string, string | null][]) {
  const files: Record<string, string> = {};
  for (const [name, snapshot] of entries) {
    files[`drizzle/${name}/migration.sql`] = 'SELECT 1;';
    if (snapshot !== null) files[`drizzle/${name}/snapshot.json`] = snapshot;
  }
  return readMigrationFolder(join(makeApp(files), 'drizzle'), {
    version: '1.0.0-rc.5',
    major: 1,
    path: '',
  });
}

const tablesOf = (f: ReturnType<typeof folder>) => {
  const latest = latestSnapshot(f);
  return latest && Object.fromEntries([...latest.tables].map(([k, v]) => [k, [...v].sort()]));
};

describe('drizzle-kit 1.0 snapshots (base + diffs)', () => {
  it('replays renames, moves, drops and new columns along the chain; folders without a snapshot are ours', () => {
    const f = folder([
      [
        '20250101000000_init',
        base('a', [
          { name: 'archive', entityType: 'schemas' },
          table('public', 'posts'),
          table('public', 'notes'),
          table('public', 'gone'),
          column('public', 'posts', 'id'),
          column('public', 'posts', 'author_id'),
          column('public', 'notes', 'id'),
          column('public', 'gone', 'id'),
        ]),
      ],
      ['20250101000001_pgpubsub', null],
      [
        '20250102000000_renames',
        diff(
          'b',
          ['a'],
          [
            { op: 'rename', key: key('tables', 'public', 'posts'), set: { name: 'articles' } },
            {
              op: 'rename',
              key: key('columns', 'public', 'articles', 'author_id'),
              set: { name: 'writer_id' },
            },
            {
              op: 'rename',
              key: key('tables', 'public', 'notes'),
              set: { name: 'old_notes', schema: 'archive' },
            },
            { op: 'drop', key: key('tables', 'public', 'gone') },
            { op: 'drop', key: key('columns', 'public', 'gone', 'id') },
            { op: 'create', row: column('public', 'articles', 'views') },
          ],
        ),
      ],
      ['20250103000000_custom', diff('c', ['b'], [])],
    ]);
    expect(f.layout).toBe('folders');
    expect(tablesOf(f)).toEqual({
      'public.articles': ['id', 'views', 'writer_id'],
      'archive.old_notes': ['id'],
    });
    expect(latestSnapshot(f)!.path).toMatch(/20250103000000_custom\/snapshot\.json$/);
  });

  it('moves the tables of a renamed schema with it, and drops a dropped column', () => {
    const f = folder([
      [
        '20250101000000_init',
        base('a', [table('old', 't'), column('old', 't', 'id'), column('old', 't', 'x')]),
      ],
      [
        '20250102000000_rename',
        diff(
          'b',
          ['a'],
          [
            { op: 'rename', key: key('schemas', 'old'), set: { name: 'new' } },
            { op: 'drop', key: key('columns', 'new', 't', 'x') },
          ],
        ),
      ],
    ]);
    expect(tablesOf(f)).toEqual({ 'new.t': ['id'] });
  });

  it('follows the leaf, not the last folder, and combines the leaves of merged branches', () => {
    const init = base('a', [table('public', 'one'), column('public', 'one', 'id')]);
    // Two branches from `a`; the last folder by name is not the newest state of either alone.
    const branches: [string, string | null][] = [
      ['20250101000000_init', init],
      ['20250102000000_left', diff('l', ['a'], [{ op: 'create', row: table('public', 'left') }])],
      ['20250103000000_right', diff('r', ['a'], [{ op: 'create', row: table('public', 'right') }])],
    ];
    expect(Object.keys(tablesOf(folder(branches))!).sort()).toEqual([
      'public.left',
      'public.one',
      'public.right',
    ]);
    // A merge migration names both parents.
    const merged = folder([
      ...branches,
      [
        '20250104000000_merge',
        diff(
          'm',
          ['r', 'l'],
          [{ op: 'rename', key: key('tables', 'public', 'left'), set: { name: 'lefty' } }],
        ),
      ],
    ]);
    expect(Object.keys(tablesOf(merged)!).sort()).toEqual(['public.lefty', 'public.one', 'public.right']);
    // A later linear diff after the merge.
    const after = folder([
      ...branches,
      ['20250104000000_merge', diff('m', ['r', 'l'], [])],
      ['20250105000000_drop', diff('d', ['m'], [{ op: 'drop', key: key('tables', 'public', 'one') }])],
    ]);
    expect(Object.keys(tablesOf(after)!).sort()).toEqual(['public.left', 'public.right']);
  });

  it('reads a whole (pre-rc) 1.0 snapshot with a `ddl` and no `type`', () => {
    const f = folder([
      [
        '20250101000000_init',
        JSON.stringify({
          version: '8',
          dialect: 'postgres',
          id: 'a',
          prevIds: [ORIGIN],
          ddl: [table('public', 't'), column('public', 't', 'id')],
        }),
      ],
    ]);
    expect(tablesOf(f)).toEqual({ 'public.t': ['id'] });
  });

  it('has nothing to compare with (null) for no snapshots, no tables, or an unreadable or broken chain', () => {
    expect(latestSnapshot(folder([['20250101000000_pgpubsub', null]]))).toBeNull();
    expect(latestSnapshot(folder([['20250101000000_init', base('a', [])]]))).toBeNull();
    expect(latestSnapshot(folder([['20250101000000_init', '{not json']]))).toBeNull();
    expect(latestSnapshot(folder([['20250102000000_x', diff('b', ['missing'], [])]]))).toBeNull();
    expect(
      latestSnapshot(
        folder([
          ['20250101000000_init', JSON.stringify({ id: 'a', prevIds: [], dialect: 'mysql', ddl: [] })],
        ]),
      ),
    ).toBeNull();
  });
});
