import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const DRIVERS = ['postgres', 'pg', 'drizzle-orm/postgres-js', 'drizzle-orm/node-postgres'];

/** Specifiers a module loads at run time: static imports and re-exports (not `import type`), dynamic imports. */
function runtimeSpecifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) {
    if (!m[2]) specs.push(m[3]!);
  }
  for (const m of text.matchAll(/^import\s+'([^']+)'/gm)) specs.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)) specs.push(m[1]!);
  return specs;
}

/** Dynamic `import('…')` specifiers only. */
function dynamicSpecifiers(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!);
}

/** Every module `entry` loads, transitively: relative ones as paths, packages as specifiers. */
function moduleGraph(
  entry: string,
  specifiers: (file: string) => string[] = runtimeSpecifiers,
): { files: string[]; packages: Map<string, string> } {
  const files: string[] = [];
  const packages = new Map<string, string>();
  const todo = [resolve(ROOT, entry)];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (files.includes(file)) continue;
    files.push(file);
    for (const spec of specifiers(file)) {
      if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec));
      else if (!packages.has(spec)) packages.set(spec, relative(ROOT, file));
    }
  }
  return { files, packages };
}

describe('entry points that must load no database driver', () => {
  for (const entry of ['src/schema.ts', 'src/admin.ts', 'src/dead-letters.ts', 'src/dashboard/index.ts']) {
    it(`${entry} loads no driver`, () => {
      const { files, packages } = moduleGraph(entry);
      const drivers = [...packages].filter(([spec]) => DRIVERS.includes(spec));
      expect(drivers, `loaded from ${drivers.map(([, from]) => from).join(', ')}`).toEqual([]);
      expect(files.filter((f) => relative(ROOT, f).startsWith('src/runtime/'))).toEqual([]);
    });
  }

  it('the graph walk sees drivers where they are (src/index.ts loads postgres.js)', () => {
    expect([...moduleGraph('src/index.ts').packages.keys()]).toContain('postgres');
  });

  it('package.json exports drizzle-pgpubsub/schema as the built src/schema.ts', () => {
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8'));
    expect(pkg.exports['./schema']).toEqual({ types: './dist/schema.d.ts', default: './dist/schema.js' });
  });

  it('only src/runtime/ imports a driver', () => {
    const { files } = moduleGraph('src/index.ts');
    const cli = moduleGraph('src/cli/main.ts').files;
    const offenders = [...new Set([...files, ...cli])]
      .filter((f) => !relative(ROOT, f).startsWith('src/runtime/'))
      .filter((f) => runtimeSpecifiers(f).some((s) => DRIVERS.includes(s)));
    expect(offenders.map((f) => relative(ROOT, f))).toEqual([]);
  });

  it('an app on postgres.js never loads pg: node-postgres is imported dynamically, in one file', () => {
    const staticOnly = (file: string) => {
      const dynamic = dynamicSpecifiers(file);
      return runtimeSpecifiers(file).filter((spec) => !dynamic.includes(spec));
    };
    for (const entry of ['src/index.ts', 'src/cli/main.ts']) {
      const loaded = [...moduleGraph(entry, staticOnly).packages.keys()];
      expect(loaded).not.toContain('pg');
      expect(loaded).not.toContain('drizzle-orm/node-postgres');
    }
    const importers = moduleGraph('src/index.ts').files.filter((f) =>
      dynamicSpecifiers(f).some((s) => s === 'pg' || s === 'drizzle-orm/node-postgres'),
    );
    expect(importers.map((f) => relative(ROOT, f))).toEqual(['src/runtime/drivers/node-postgres.ts']);
  });

  it('an app on node-postgres never loads postgres.js: postgres.js is imported dynamically, in one file', () => {
    const staticOnly = (file: string) => {
      const dynamic = dynamicSpecifiers(file);
      return runtimeSpecifiers(file).filter((spec) => !dynamic.includes(spec));
    };
    for (const entry of ['src/index.ts', 'src/cli/main.ts']) {
      const loaded = [...moduleGraph(entry, staticOnly).packages.keys()];
      expect(loaded).not.toContain('postgres');
      expect(loaded).not.toContain('drizzle-orm/postgres-js');
    }
    const importers = moduleGraph('src/index.ts').files.filter((f) =>
      dynamicSpecifiers(f).some((s) => s === 'postgres' || s === 'drizzle-orm/postgres-js'),
    );
    expect(importers.map((f) => relative(ROOT, f))).toEqual(['src/runtime/drivers/postgres-js.ts']);
  });
});
