/**
 * Column names under a Drizzle `casing` setting, computed here rather than through Drizzle's casing
 * cache (drizzle-orm 1.0 removed `CasingCache`). The rules are drizzle-orm 0.x's documented ones:
 * words are runs of digits and lower-case letters, runs of capitals not followed by a lower-case
 * letter, or a capital followed by lower-case letters and digits; apostrophes are dropped.
 * `test/unit/casing.test.ts` checks them against Drizzle's own output on 0.x. On drizzle-orm 1.0 the
 * casing is applied when the table is built (`snakeCase.table(…)`), so `column.name` is already the
 * database name and no database-level casing exists.
 *
 * @module
 */
import type { Column } from 'drizzle-orm/column';

/** A Drizzle casing setting (`drizzle({ casing })` and `drizzle.config.ts` on drizzle-orm 0.x). */
export type ColumnCasing = 'snake_case' | 'camelCase';

const WORDS = /[\da-z]+|[A-Z]+(?![a-z])|[A-Z][\da-z]+/g;

const words = (input: string): string[] => input.replace(/['\u2019]/g, '').match(WORDS) ?? [];

/** `authorId` → `author_id`, as Drizzle's `casing: 'snake_case'` does. */
export function toSnakeCase(input: string): string {
  return words(input)
    .map((word) => word.toLowerCase())
    .join('_');
}

/** `author_id` → `authorId`, as Drizzle's `casing: 'camelCase'` does. */
export function toCamelCase(input: string): string {
  return words(input).reduce(
    (acc, word, i) => acc + (i === 0 ? word.toLowerCase() : `${word[0]!.toUpperCase()}${word.slice(1)}`),
    '',
  );
}

/**
 * The database name of a Drizzle column under a casing setting (`undefined`: names as written). A
 * column given an explicit name (`text('body_text')`) keeps it; one named after its key is converted.
 */
export function columnDbName(column: Column, casing: ColumnCasing | undefined): string {
  if (casing === undefined || !(column as { keyAsName?: boolean }).keyAsName) return column.name;
  return casing === 'snake_case' ? toSnakeCase(column.name) : toCamelCase(column.name);
}

/** A column namer for a casing setting, in the shape `rowDecoder` takes. */
export function columnNamer(casing: ColumnCasing | undefined): { getColumnCasing(column: Column): string } {
  return { getColumnCasing: (column) => columnDbName(column, casing) };
}
