import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { createJiti } from 'jiti';
import { globSync } from 'tinyglobby';
import type { ColumnCasing as Casing } from '../casing.ts';
import { PgPubSubError, pgPubSubErrorCode } from '../errors.ts';
import { displayPath, MIGRATION_PREFIXES, type MigrationPrefix } from './migration-folder.ts';
import type { LoadedModule } from './plan.ts';

/** Config file names looked up in the working directory, in drizzle-kit's order. */
export const CONFIG_FILES = [
  'drizzle.config.ts',
  'drizzle.config.js',
  'drizzle.config.mjs',
  'drizzle.config.cjs',
];

const CODE_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.tsx', '.jsx']);
const CASINGS: readonly Casing[] = ['snake_case', 'camelCase'];

/** The parts of a drizzle config that `generate` uses, with paths resolved. */
export interface LoadedDrizzleConfig {
  /** Absolute path of the config file. */
  path: string;
  /** Absolute migrations folder (`out`, default `drizzle`). */
  out: string;
  /** Schema files matched by `schema`, absolute, sorted. */
  schemaFiles: string[];
  casing: Casing | undefined;
  prefix: MigrationPrefix;
  /** drizzle-kit's `schemaFilter` (`push`/`pull` introspect only these pg schemas; default `public`). */
  schemaFilter: string[];
}

function configInvalid(path: string, cwd: string, problem: string): PgPubSubError {
  return new PgPubSubError('CONFIG_INVALID', `${displayPath(path, cwd)}: ${problem}`);
}

function findConfig(cwd: string, given: string | undefined): string {
  if (given !== undefined) {
    const path = resolve(cwd, given);
    if (!existsSync(path) || statSync(path).isDirectory()) {
      throw new PgPubSubError(
        'CONFIG_NOT_FOUND',
        `Config file ${path} does not exist. Check the --config path (relative to ${cwd}).`,
      );
    }
    return path;
  }
  for (const name of CONFIG_FILES) {
    const path = join(cwd, name);
    if (existsSync(path)) return path;
  }
  throw new PgPubSubError(
    'CONFIG_NOT_FOUND',
    `No drizzle config found in ${cwd} (looked for ${CONFIG_FILES.join(', ')}). Run the command from your project folder, or pass --config <path>.`,
  );
}

const strings = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string' && item !== '');

/**
 * drizzle-kit's schema file matching (relative to the working directory, like drizzle-kit): each
 * pattern is a glob; a matched folder contributes the files directly inside it.
 */
export function expandSchemaPatterns(patterns: readonly string[], cwd: string): string[] {
  const files = new Set<string>();
  for (const pattern of patterns) {
    const matches = globSync(pattern, { cwd, absolute: true, onlyFiles: false, expandDirectories: false });
    for (const match of matches) {
      const path = resolve(match);
      if (statSync(path).isDirectory()) {
        for (const name of readdirSync(path)) {
          const file = join(path, name);
          if (statSync(file).isFile()) files.add(file);
        }
      } else files.add(path);
    }
  }
  return [...files].filter((file) => CODE_EXTENSIONS.has(extname(file))).sort();
}

/**
 * Finds and loads the drizzle config (TypeScript or JavaScript, through jiti), checks the fields
 * `generate` needs, and expands `schema` into files. Throws `CONFIG_NOT_FOUND` / `CONFIG_INVALID`.
 */
export async function loadDrizzleConfig(options: {
  cwd: string;
  config?: string | undefined;
}): Promise<LoadedDrizzleConfig> {
  const { cwd } = options;
  const path = findConfig(cwd, options.config);
  let raw: unknown;
  try {
    raw = await createJiti(import.meta.url, { moduleCache: false }).import(path, { default: true });
  } catch (error) {
    throw new PgPubSubError(
      'CONFIG_INVALID',
      `Could not load ${displayPath(path, cwd)}: ${(error as Error)?.message ?? String(error)}`,
      { cause: error },
    );
  }
  if (typeof raw !== 'object' || raw === null) {
    throw configInvalid(path, cwd, 'the config must `export default defineConfig({ ... })`.');
  }
  const config = raw as Record<string, unknown>;
  if (config.dialect !== 'postgresql') {
    throw configInvalid(
      path,
      cwd,
      `drizzle-pgpubsub needs \`dialect: 'postgresql'\`, found ${config.dialect === undefined ? 'no dialect' : JSON.stringify(config.dialect)}.`,
    );
  }
  const schema = typeof config.schema === 'string' ? [config.schema] : config.schema;
  if (!strings(schema) || schema.length === 0) {
    throw configInvalid(
      path,
      cwd,
      "set `schema` to your Drizzle schema file(s): a path or glob, or an array of them (e.g. schema: './src/db/schema.ts').",
    );
  }
  if (config.out !== undefined && (typeof config.out !== 'string' || config.out === '')) {
    throw configInvalid(path, cwd, '`out` must be a folder path (default: drizzle).');
  }
  if (config.casing !== undefined && !CASINGS.includes(config.casing as Casing)) {
    throw configInvalid(
      path,
      cwd,
      `\`casing\` must be 'snake_case' or 'camelCase', found ${JSON.stringify(config.casing)}.`,
    );
  }
  const migrations = (config.migrations ?? {}) as Record<string, unknown>;
  const prefix = (migrations.prefix ?? 'index') as MigrationPrefix;
  if (!MIGRATION_PREFIXES.includes(prefix)) {
    throw configInvalid(
      path,
      cwd,
      `\`migrations.prefix\` must be one of ${MIGRATION_PREFIXES.join(', ')}, found ${JSON.stringify(prefix)}.`,
    );
  }
  const filter = typeof config.schemaFilter === 'string' ? [config.schemaFilter] : config.schemaFilter;
  const schemaFiles = expandSchemaPatterns(schema, cwd);
  if (schemaFiles.length === 0) {
    throw configInvalid(
      path,
      cwd,
      `no schema files match ${schema.map((s) => JSON.stringify(s)).join(', ')} (relative to ${cwd}, as drizzle-kit reads them). Fix \`schema\` or run the command from the project folder.`,
    );
  }
  return {
    path,
    out: resolve(cwd, (config.out as string | undefined) ?? 'drizzle'),
    schemaFiles,
    casing: config.casing as Casing | undefined,
    prefix,
    schemaFilter: strings(filter) ? filter : ['public'],
  };
}

/** An error's message on one line, without Node's "Require stack" list. */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .split('\nRequire stack:')[0]!
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

/**
 * Imports schema files with jiti as one module graph (a file imported by several schema files is
 * evaluated once, so re-exported channels keep their identity), fresh on every call. Throws
 * `SCHEMA_IMPORT_FAILED` naming the file and the underlying error; a drizzle-pgpubsub error thrown
 * while declaring a channel keeps its own code.
 */
export function importSchemaFiles(files: readonly string[], cwd: string): LoadedModule[] {
  const jiti = createJiti(import.meta.url, { moduleCache: false });
  const loader = `module.exports = ${JSON.stringify(files)}.map((file) => {
  try { return { file, exports: require(file) }; } catch (error) { return { file, error }; }
});`;
  const results = jiti.evalModule(loader, {
    filename: join(cwd, '__drizzle_pgpubsub_schema__.cjs'),
    async: false,
  }) as { file: string; exports?: Record<string, unknown>; error?: unknown }[];
  return results.map((result) => {
    const { file, exports, error } = result;
    const shown = displayPath(file, cwd);
    if ('error' in result || exports === undefined) {
      const code = pgPubSubErrorCode(error);
      if (code) throw new PgPubSubError(code, `${shown}: ${(error as Error).message}`, { cause: error });
      throw new PgPubSubError(
        'SCHEMA_IMPORT_FAILED',
        `Could not import schema file ${shown} (${oneLine(error)}). Fix that error; drizzle-kit would fail on it too. Schema files must load under Node without top-level await.`,
        { cause: error },
      );
    }
    return { file: shown, exports };
  });
}
