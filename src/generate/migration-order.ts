import { join } from 'node:path';
import { is } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import { PgPubSubError } from '../errors.ts';
import { quoteIdent } from '../identifiers.ts';
import { type TriggerSpec, triggerName } from '../storage/trigger-sql.ts';
import { latestSnapshot } from './kit-snapshot.ts';
import { displayPath, type MigrationFolder } from './migration-folder.ts';
import type { GeneratePlan, LoadedModule, RecordedState } from './plan.ts';

/** `schema.table` of every Drizzle table exported by the schema files (what drizzle-kit sees). */
export function declaredTables(modules: readonly LoadedModule[]): Set<string> {
  const out = new Set<string>();
  for (const mod of modules) {
    for (const value of Object.values(mod.exports)) {
      if (!is(value, PgTable)) continue;
      const config = getTableConfig(value as PgTable);
      out.add(`${config.schema ?? 'public'}.${config.name}`);
    }
  }
  return out;
}

const ORDER_HINT =
  'Run `npx drizzle-kit generate` first (it writes the schema change), then `npx drizzle-pgpubsub generate` again: its migration must run after drizzle-kit’s.';

/**
 * How to remove a migration that is not applied yet: `drizzle-kit drop` on 0.x; drizzle-kit 1.0 has no
 * `drop` (a migration is its folder, found by scanning), so the folder is deleted.
 */
export function removeHint(folder: MigrationFolder, name: string, cwd: string): string {
  return folder.layout === 'journal'
    ? `Remove ${name} with \`npx drizzle-kit drop\``
    : `Delete the folder ${displayPath(join(folder.out, name), cwd)} (drizzle-kit 1.0 has no \`drop\`: a migration is its folder)`;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The columns of the `UPDATE OF` list a recorded migration gave a channel's update trigger. */
function recordedUpdateColumns(sql: string, channel: string): string[] {
  const trigger = escapeRegExp(quoteIdent(triggerName(channel, 'update')));
  const match = new RegExp(`CREATE TRIGGER ${trigger} AFTER UPDATE OF (.+?) ON `).exec(sql);
  if (!match) return [];
  return [...match[1]!.matchAll(/"((?:[^"]|"")*)"/g)].map((m) => m[1]!.replace(/""/g, '"'));
}

/**
 * Refuses to write a migration that could not apply where the migrator puts it (after every existing
 * one), naming the commands that fix the order:
 *
 * - a channel's table or `columns` are not in drizzle-kit's newest snapshot although a table a channel
 *   was recorded on still is and is no longer declared: a rename drizzle-kit has not generated yet
 *   (`CREATE TRIGGER` on the new name would fail);
 * - a drizzle-kit migration written after the channel's last migration drops a column of its
 *   `UPDATE OF` list: PostgreSQL refuses that drop while the trigger depends on the column, so the
 *   channel's new migration (which no longer names the column) must run first.
 */
export function checkMigrationOrder(input: {
  folder: MigrationFolder;
  plan: GeneratePlan;
  specs: ReadonlyMap<string, TriggerSpec>;
  state: RecordedState;
  modules: readonly LoadedModule[];
  cwd: string;
}): void {
  const { folder, plan, specs, state, cwd } = input;
  const latest = latestSnapshot(folder);
  if (latest) {
    const known = latest.tables;
    const snapshot = displayPath(latest.path, cwd);
    const declared = declaredTables(input.modules);
    const stale = [...state.channels.values()]
      .map((c) => `${c.tableSchema}.${c.table}`)
      .filter((key) => known.has(key) && !declared.has(key));
    for (const { name } of plan.installed) {
      const spec = specs.get(name)!;
      const key = `${spec.tableSchema}.${spec.table}`;
      const columns = known.get(key);
      if (!columns) {
        if (stale.length === 0) continue; // a table made some other way: generate warns about it
        throw new PgPubSubError(
          'MIGRATION_ORDER',
          `Channel "${name}" watches "${spec.tableSchema}"."${spec.table}", but drizzle-kit's latest snapshot (${snapshot}) does not have that table yet and still has "${stale[0]!.replace('.', '"."')}", which your schema no longer declares: the rename (or move) is not generated yet. ${ORDER_HINT}`,
        );
      }
      const missing = spec.columns.filter((column) => !columns.has(column));
      if (missing.length > 0) {
        throw new PgPubSubError(
          'MIGRATION_ORDER',
          `Channel "${name}" watches column "${missing[0]}" of "${spec.tableSchema}"."${spec.table}", which drizzle-kit's latest snapshot (${snapshot}) does not have yet: the column change is not generated yet. ${ORDER_HINT}`,
        );
      }
    }
  }
  // A dropped column of the recorded UPDATE OF list, dropped by a migration after the channel's own.
  for (const { name } of plan.installed) {
    const old = state.channels.get(name);
    if (!old) continue;
    const index = folder.migrations.findIndex((m) => m.name === old.migration);
    if (index < 0) continue;
    const spec = specs.get(name)!;
    const gone = recordedUpdateColumns(folder.migrations[index]!.sql, name).filter(
      (column) => !spec.columns.includes(column),
    );
    for (const later of folder.migrations.slice(index + 1)) {
      for (const column of gone) {
        const table = `(?:${escapeRegExp(quoteIdent(old.tableSchema))}\\.)?${escapeRegExp(quoteIdent(old.table))}`;
        const drop = new RegExp(
          `ALTER TABLE ${table} DROP COLUMN (?:IF EXISTS )?${escapeRegExp(quoteIdent(column))}`,
        );
        if (!drop.test(later.sql)) continue;
        throw new PgPubSubError(
          'MIGRATION_ORDER',
          `Migration ${later.name} drops column "${column}" of "${old.tableSchema}"."${old.table}", which the update trigger of channel "${name}" depends on (\`columns\`): PostgreSQL refuses that drop ("cannot drop column … because other objects depend on it") unless the channel's new migration runs first. ${removeHint(folder, later.name, cwd)}, run \`npx drizzle-pgpubsub generate\`, then \`npx drizzle-kit generate\` again.`,
        );
      }
    }
  }
}
