import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMigrationFolder } from '../../src/generate/migration-folder.ts';
import { planMigration, writeMigration } from '../../src/generate/migration-writer.ts';
import { makeApp, useScratchApps } from '../fixtures/generate-app.ts';

useScratchApps({ cli: false });

describe('migration folder writer', () => {
  const folderWith = (files: Record<string, string>) => {
    const dir = makeApp(files);
    return join(dir, 'drizzle');
  };
  const journal = (...tags: string[]) =>
    JSON.stringify({
      version: '7',
      dialect: 'postgresql',
      entries: tags.map((tag, idx) => ({
        idx,
        version: '7',
        when: 1700000000000 + idx,
        tag,
        breakpoints: true,
      })),
    });
  const now = new Date('2026-03-04T05:06:07.890Z');

  it('names migrations with every drizzle-kit prefix scheme', () => {
    const out = folderWith({
      'drizzle/meta/_journal.json': journal('0000_a'),
      'drizzle/0000_a.sql': 'SELECT 1;',
    });
    const name = (prefix: 'index' | 'timestamp' | 'supabase' | 'unix' | 'none') =>
      relative(
        out,
        planMigration(readMigrationFolder(out), '', { name: 'pgpubsub', prefix, now }).migrationPath,
      );
    expect(name('index')).toBe('0001_pgpubsub.sql');
    expect(name('timestamp')).toBe('20260304050607_pgpubsub.sql');
    expect(name('supabase')).toBe('20260304050607_pgpubsub.sql');
    expect(name('unix')).toBe(`${Math.floor(now.getTime() / 1000)}_pgpubsub.sql`);
    expect(name('none')).toBe('_pgpubsub.sql');
  });

  it('never reuses a tag or snapshot name, and writes `when` after the last entry', () => {
    const out = folderWith({ 'drizzle/.keep': '' });
    for (const prefix of ['none', 'none', 'timestamp', 'timestamp'] as const) {
      writeMigration(
        planMigration(readMigrationFolder(out), 'SELECT 1;\n', { name: 'pgpubsub', prefix, now }),
      );
    }
    const written = JSON.parse(readFileSync(join(out, 'meta/_journal.json'), 'utf8'));
    expect(written.entries.map((e: { tag: string }) => e.tag)).toEqual([
      '_pgpubsub',
      '_pgpubsub_2',
      '20260304050607_pgpubsub',
      '20260304050608_pgpubsub',
    ]);
    expect(written.entries.map((e: { when: number }) => e.when - now.getTime())).toEqual([0, 1, 2, 3]);
    expect(readdirSync(join(out, 'meta')).sort()).toEqual([
      '20260304050607_snapshot.json',
      '20260304050608_snapshot.json',
      '_journal.json',
      '_snapshot.json',
    ]);
  });
});
