import { dirname, resolve } from 'node:path';
import { PgPubSubError } from '../errors.ts';
import { byteLength, MAX_IDENTIFIER_BYTES } from '../identifiers.ts';
import { DEFAULT_SCHEMA } from '../storage/notifications.ts';
import { latestSnapshot } from './kit-snapshot.ts';
import { type InstalledKit, installedDrizzleKit } from './kit-version.ts';
import { importSchemaFiles, type LoadedDrizzleConfig, loadDrizzleConfig } from './load-config.ts';
import { displayPath, type MigrationFolder, readMigrationFolder } from './migration-folder.ts';
import { checkMigrationOrder } from './migration-order.ts';
import { migrationSql, planMigration, writeMigration } from './migration-writer.ts';
import { collectChannels, type GeneratePlan, planGenerate, readRecordedState } from './plan.ts';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Folder the config and `schema`/`out` paths are relative to (default: `process.cwd()`). */
  cwd?: string;
  /** Config file (default: drizzle.config.{ts,js,mjs,cjs} in `cwd`). */
  config?: string;
  /** pg schema of the notifications table (default: recorded, else `pgpubsub`). */
  schema?: string;
  /** Clock for `when` and timestamp prefixes (tests). */
  now?: Date;
  /** Progress lines (default: stdout). */
  log?: (line: string) => void;
  /** Warnings (default: stderr). */
  warn?: (line: string) => void;
}

/** What {@link generate} did. */
export interface GenerateResult {
  /** Absolute paths of the files written (empty: nothing changed). */
  written: string[];
  plan: GeneratePlan;
  warnings: string[];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function collectWarnings(
  config: LoadedDrizzleConfig,
  folder: MigrationFolder,
  plan: GeneratePlan,
  cwd: string,
  kit: InstalledKit | undefined,
): string[] {
  const warnings: string[] = [];
  if (folder.layout === 'folders' && kit && kit.major < 1) {
    warnings.push(
      `warning: ${displayPath(folder.out, cwd)} has drizzle-kit 1.0's folder layout, but drizzle-kit ${kit.version} is installed, which does not read it. Install drizzle-kit 1.0 (and drizzle-orm 1.0) to apply these migrations.`,
    );
  }
  if (config.schemaFilter.includes(plan.schema)) {
    warnings.push(
      `warning: schemaFilter in ${displayPath(config.path, cwd)} includes "${plan.schema}": \`drizzle-kit push\` would drop the notifications table there. Remove it from schemaFilter.`,
    );
  }
  const latest = latestSnapshot(folder);
  if (latest) {
    const snapshot = displayPath(latest.path, cwd);
    const remove =
      folder.layout === 'journal'
        ? 'delete this migration with `drizzle-kit drop`'
        : 'delete this migration’s folder (drizzle-kit 1.0 has no `drop`)';
    for (const { name, tableSchema, table } of plan.installed) {
      if (!latest.tables.has(`${tableSchema}.${table}`)) {
        warnings.push(
          `warning: channel "${name}" watches "${tableSchema}"."${table}", which is not in drizzle-kit's latest snapshot (${snapshot}). Unless you create that table some other way, run \`drizzle-kit generate\` first so it exists before this trigger migration runs, then ${remove} and generate it again.`,
        );
      }
    }
  }
  return warnings;
}

/**
 * `drizzle-pgpubsub generate`: loads the drizzle config and schema files, compares the exported
 * channels with the state recorded in existing migrations and writes one new migration (or nothing
 * when up to date). Everything is validated before anything is written; bad input throws a
 * {@link PgPubSubError}.
 */
export async function generate(options: GenerateOptions = {}): Promise<GenerateResult> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const log = options.log ?? ((line: string) => console.log(line));
  const warn = options.warn ?? ((line: string) => console.error(line));
  if (options.schema !== undefined) {
    const bytes = byteLength(options.schema);
    if (bytes === 0 || bytes > MAX_IDENTIFIER_BYTES) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `--schema must be a pg schema name of 1-${MAX_IDENTIFIER_BYTES} bytes, got ${JSON.stringify(options.schema)}.`,
      );
    }
  }
  const config = await loadDrizzleConfig({ cwd, config: options.config });
  const modules = importSchemaFiles(config.schemaFiles, cwd);
  const kit = installedDrizzleKit(dirname(config.path));
  const folder = readMigrationFolder(config.out, kit);
  const state = readRecordedState(folder.migrations);
  const channels = collectChannels(modules, options.schema ?? state.storage?.schema ?? DEFAULT_SCHEMA);
  // drizzle-kit 1.0 has no config-level casing: tables carry theirs (`snakeCase.table`), in column.name.
  const kitV1 = kit !== undefined && kit.major >= 1;
  const casing = kitV1 ? undefined : config.casing;
  const plan = planGenerate({ channels, state, schema: options.schema, casing });
  checkMigrationOrder({ folder, plan, specs: plan.specs, state, modules, cwd });

  const warnings = collectWarnings(config, folder, plan, cwd, kit);
  if (kitV1 && config.casing !== undefined) {
    warnings.push(
      `warning: \`casing\` in ${displayPath(config.path, cwd)} is ignored: drizzle-kit ${kit.version} takes casing from the tables (\`snakeCase.table(…)\` from drizzle-orm/pg-core), and so does drizzle-pgpubsub.`,
    );
  }
  if (plan.statements.length === 0) {
    log(`No changes: ${plural(plan.channels, 'channel')} up to date.`);
    for (const line of warnings) warn(line);
    return { written: [], plan, warnings };
  }
  const migration = planMigration(folder, migrationSql(plan.header, plan.statements), {
    name: 'pgpubsub',
    prefix: config.prefix,
    ...(options.now ? { now: options.now } : {}),
  });
  const written = writeMigration(migration);
  // drizzle-kit 1.0 names folders by the second: a `drizzle-kit generate` run right after this one
  // (a script running both) could name its folder in the same second, and sort (by name) before
  // ours although it came after. Return only once that second is over (at most ~2 s; a folder
  // named further ahead, after clock skew, is not waited for).
  const until = migration.sortsBeforeFoldersFrom;
  if (until !== undefined && options.now === undefined) {
    const wait = until - Date.now();
    if (wait > 0 && wait <= 2000) await new Promise((resolve) => setTimeout(resolve, wait + 5));
  }

  if (plan.storage) log(`storage: ${plan.storage} in schema "${plan.schema}"`);
  for (const name of plan.added) log(`+ ${name}`);
  for (const name of plan.changed) log(`~ ${name} (changed)`);
  for (const name of plan.moved) log(`~ ${name} (moved to another table)`);
  for (const name of plan.removed) log(`- ${name} (removed)`);
  for (const path of written)
    log(`${path.endsWith('_journal.json') ? 'Updated' : 'Wrote'} ${displayPath(path, cwd)}`);
  log('Apply it with `drizzle-kit migrate` (or migrate() from drizzle-orm).');
  for (const line of warnings) warn(line);
  return { written, plan, warnings };
}
