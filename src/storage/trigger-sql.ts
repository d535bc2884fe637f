import type { Casing } from 'drizzle-orm';
import { getTableColumns } from 'drizzle-orm';
import { CasingCache } from 'drizzle-orm/casing';
import type { Column } from 'drizzle-orm/column';
import { getTableConfig } from 'drizzle-orm/pg-core';
import type { TriggerChannel, TriggerOp } from '../channel.ts';
import { PgPubSubError } from '../errors.ts';
import { boundedIdent, dollarQuote, qualify, quoteIdent, quoteLiteral } from '../identifiers.ts';
import { DEFAULT_SCHEMA, wakeCondition } from './notifications.ts';
import { notificationsRef } from './sql-names.ts';

/** Everything the SQL builders need about one trigger channel, with database names resolved. */
export interface TriggerSpec {
  channel: string;
  tableSchema: string;
  table: string;
  ops: TriggerOp[];
  /** Database names of the columns whose change produces update events (empty: any update). */
  columns: string[];
  when: string | null;
}

const SUFFIX: Record<TriggerOp | 'wake', string> = {
  insert: '_ins',
  update: '_upd',
  delete: '_del',
  wake: '_wake',
};

/** The database name of a Drizzle column under a casing setting (`undefined`: names as written). */
export function columnDbName(column: Column, casing: Casing | undefined): string {
  return new CasingCache(casing).getColumnCasing(column);
}

/**
 * Resolves a channel into a {@link TriggerSpec}. Throws `NO_PRIMARY_KEY` for a table without a primary
 * key: events name their row by key, and an update of a keyless table could not be told apart.
 */
export function resolveTriggerSpec(channel: TriggerChannel<any, any>, casing?: Casing): TriggerSpec {
  const config = getTableConfig(channel.table);
  const columns = getTableColumns(channel.table) as Record<string, Column>;
  const hasPk = config.primaryKeys.length > 0 || Object.values(columns).some((c) => c.primary);
  if (!hasPk) {
    throw new PgPubSubError(
      'NO_PRIMARY_KEY',
      `Trigger channel "${channel.name}" watches table "${config.name}", which has no primary key. Add a primary key to the table (e.g. \`id: serial().primaryKey()\`).`,
    );
  }
  return {
    channel: channel.name,
    tableSchema: config.schema ?? 'public',
    table: config.name,
    ops: [...channel.ops],
    columns: channel.columns.map((key) => columnDbName(columns[key]!, casing)),
    when: channel.when ?? null,
  };
}

/** Name of the trigger function of a channel, inside the pgpubsub schema. */
export function functionName(channel: string): string {
  return boundedIdent('ch_', channel);
}

/** Name of one of the triggers a channel puts on its table. */
export function triggerName(channel: string, kind: TriggerOp | 'wake'): string {
  return boundedIdent('pgpubsub_', channel, SUFFIX[kind]);
}

const CONTEXT = `coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb)`;

function functionSql(spec: TriggerSpec, schema: string): string {
  const ch = quoteLiteral(spec.channel);
  const table = qualify(spec.tableSchema, spec.table);
  const when = spec.when === null ? null : `coalesce((${spec.when}), false)`;
  const changed =
    spec.columns.length === 0
      ? null
      : `(${spec.columns.map((c) => `OLD.${quoteIdent(c)}`).join(', ')}) IS NOT DISTINCT FROM (${spec.columns.map((c) => `NEW.${quoteIdent(c)}`).join(', ')})`;
  // Statement-level paths: transition tables are aliased "new"/"old" so a `when` written for a row
  // trigger works unchanged; the missing side is an all-NULL row (LEFT JOIN ... ON false).
  const rowsOf = (op: 'insert' | 'delete') => {
    const [tt, alias, other] =
      op === 'insert' ? ['pgpubsub_new', 'new', 'old'] : ['pgpubsub_old', 'old', 'new'];
    const nullSide = when ? ` LEFT JOIN ${table} AS ${other} ON false WHERE ${when}` : '';
    return `INSERT INTO ${notificationsRef(schema)} ("channel", "op", "${alias}", "context")
    SELECT ${ch}, '${op}', to_jsonb(${alias}), v_context FROM ${tt} AS ${alias}${nullSide};
    GET DIAGNOSTICS v_count = ROW_COUNT;`;
  };
  const branches: string[] = [];
  if (spec.ops.includes('insert'))
    branches.push(`IF TG_OP = 'INSERT' THEN\n    ${rowsOf('insert')}\n  END IF;`);
  if (spec.ops.includes('delete'))
    branches.push(`IF TG_OP = 'DELETE' THEN\n    ${rowsOf('delete')}\n  END IF;`);
  const rowLevel = spec.ops.includes('update')
    ? `
  IF TG_LEVEL = 'ROW' THEN
    ${changed ? `IF ${changed} THEN RETURN NULL; END IF;\n    ` : ''}${when ? `IF NOT ${when} THEN RETURN NULL; END IF;\n    ` : ''}INSERT INTO ${notificationsRef(schema)} ("channel", "op", "old", "new", "context")
    VALUES (${ch}, 'update', to_jsonb(OLD), to_jsonb(NEW), ${CONTEXT});
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    v_count := 1;
  END IF;`
    : '';
  const body = `#variable_conflict use_column
DECLARE
  v_context jsonb := ${CONTEXT};
  v_count bigint := 0;
BEGIN${rowLevel}
  ${branches.join('\n  ')}
  IF v_count > 0 AND ${wakeCondition(ch, schema)} THEN
    PERFORM pg_notify(${ch}, '');
  END IF;
  RETURN NULL;
END`;
  return `CREATE OR REPLACE FUNCTION ${quoteIdent(schema)}.${quoteIdent(functionName(spec.channel))}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(body)}`;
}

function dropTriggersSql(spec: Pick<TriggerSpec, 'channel' | 'tableSchema' | 'table'>): string[] {
  const table = qualify(spec.tableSchema, spec.table);
  return (['insert', 'update', 'wake', 'delete'] as const).map(
    (kind) => `DROP TRIGGER IF EXISTS ${quoteIdent(triggerName(spec.channel, kind))} ON ${table}`,
  );
}

/**
 * Statements that install (or replace) a channel's function and triggers. INSERT and DELETE use
 * statement-level triggers with transition tables (one trigger call per statement, cheap for bulk
 * writes); UPDATE uses a row-level trigger, which pairs old and new rows even when the key changes,
 * plus a statement-level one that sends the wake-up hint once per statement.
 */
export function createTriggerSql(spec: TriggerSpec, schema: string = DEFAULT_SCHEMA): string[] {
  const table = qualify(spec.tableSchema, spec.table);
  const fn = `${quoteIdent(schema)}.${quoteIdent(functionName(spec.channel))}()`;
  const of = spec.columns.length ? ` OF ${spec.columns.map(quoteIdent).join(', ')}` : '';
  const create: string[] = [];
  for (const op of spec.ops) {
    if (op === 'insert') {
      create.push(
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'insert'))} AFTER INSERT ON ${table} REFERENCING NEW TABLE AS "pgpubsub_new" FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
      );
    } else if (op === 'delete') {
      create.push(
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'delete'))} AFTER DELETE ON ${table} REFERENCING OLD TABLE AS "pgpubsub_old" FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
      );
    } else {
      create.push(
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'update'))} AFTER UPDATE${of} ON ${table} FOR EACH ROW EXECUTE FUNCTION ${fn}`,
        `CREATE TRIGGER ${quoteIdent(triggerName(spec.channel, 'wake'))} AFTER UPDATE${of} ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}`,
      );
    }
  }
  return [functionSql(spec, schema), ...dropTriggersSql(spec), ...create];
}

/** Statements that remove a channel's triggers and function. */
export function dropTriggerSql(
  spec: Pick<TriggerSpec, 'channel' | 'tableSchema' | 'table'>,
  schema: string = DEFAULT_SCHEMA,
): string[] {
  return [
    ...dropTriggersSql(spec),
    `DROP FUNCTION IF EXISTS ${quoteIdent(schema)}.${quoteIdent(functionName(spec.channel))}()`,
  ];
}
