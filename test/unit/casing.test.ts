import * as orm from 'drizzle-orm';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { columnDbName, toCamelCase, toSnakeCase } from '../../src/casing.ts';

// drizzle-orm 0.x resolves casing with its CasingCache; 1.0 removed it (casing is set per table there).
const casingModule: any = 'defineRelations' in orm ? undefined : await import('drizzle-orm/casing');

describe('column names under casing (src/casing.ts)', () => {
  it('converts like the documented examples', () => {
    expect(toSnakeCase('authorId')).toBe('author_id');
    expect(toSnakeCase('HTMLParser2Value')).toBe('html_parser2_value');
    expect(toCamelCase('author_id')).toBe('authorId');
    expect(toCamelCase("o'neil_count")).toBe('oneilCount');
  });

  it('keeps explicit names and converts key-named columns', () => {
    const t = pgTable('t', { authorId: integer(), bodyText: text('Body Text') });
    expect(columnDbName(t.authorId, 'snake_case')).toBe('author_id');
    expect(columnDbName(t.authorId, undefined)).toBe('authorId');
    expect(columnDbName(t.bodyText, 'snake_case')).toBe('Body Text');
  });

  it.skipIf(!casingModule)("matches drizzle-orm 0.x's own CasingCache on any key", () => {
    const key = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_'$]{0,20}$/);
    fc.assert(
      fc.property(key, fc.constantFrom('snake_case' as const, 'camelCase' as const), (name, casing) => {
        const t = pgTable('t', { [name]: integer() });
        const column = Object.values(orm.getTableColumns(t))[0]!;
        expect(columnDbName(column as any, casing)).toBe(
          new casingModule.CasingCache(casing).getColumnCasing(column),
        );
      }),
      { numRuns: 2000 },
    );
  });
});
