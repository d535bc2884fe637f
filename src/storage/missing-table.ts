import { errorCodes, PgPubSubError } from '../errors.ts';
import { notificationsRef } from './sql-names.ts';

/** The one `TABLE_MISSING` error: the notifications table of `schema` does not exist, and what to do. */
export function tableMissing(schema: string, cause?: unknown): PgPubSubError {
  return new PgPubSubError(
    'TABLE_MISSING',
    `The notifications table ${notificationsRef(schema)} does not exist. Run \`npx drizzle-pgpubsub generate\` and then \`npx drizzle-kit migrate\`.`,
    cause === undefined ? undefined : { cause },
  );
}

/** True when `error` (or a cause) is PostgreSQL's `undefined_table` (42P01). */
export function isUndefinedTable(error: unknown): boolean {
  return [...errorCodes(error)].includes('42P01');
}

/** SQL (one parameter: the quoted table name) that says whether a table exists: `SELECT … AS ok`. */
export const TABLE_EXISTS_SQL = 'SELECT to_regclass($1) IS NOT NULL AS ok';
