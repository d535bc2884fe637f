/**
 * The driver-free part of what differs between drizzle-orm 0.44/0.45 and 1.0 (the driver part is
 * `runtime/drizzle-adapter.ts`): the type of "any Drizzle PostgreSQL database" and the check that a
 * value is a Drizzle transaction. Both use only what both versions export (`entityKind`), so nothing
 * here fails to load on either.
 *
 * @module
 */
import { entityKind } from 'drizzle-orm';

type PgCore = typeof import('drizzle-orm/pg-core');
type Instance<C> = C extends abstract new (...args: any) => infer I ? I : never;
type BaseDb = PgCore extends { PgAsyncDatabase: infer C }
  ? Instance<C>
  : PgCore extends { PgDatabase: infer C }
    ? Instance<C>
    : never;

/**
 * Any Drizzle PostgreSQL database, on any driver and version: `PgAsyncDatabase` on drizzle-orm 1.0,
 * `PgDatabase` on 0.x (whichever exists), without the relational parts that depend on the user's
 * schema (`query`, `_`), so every database is assignable to it.
 */
export type AnyPgDb = Omit<BaseDb, 'query' | '_'>;

/** Entity kinds of Drizzle's transaction base classes: 0.x `PgTransaction`, 1.0 `PgAsyncTransaction`. */
const TRANSACTION_KINDS = new Set(['PgTransaction', 'PgAsyncTransaction']);

/** Whether `value` is a Drizzle PostgreSQL transaction (as `is(value, PgTransaction)` was on 0.x). */
export function isDrizzleTransaction(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  for (let cls = (value as { constructor?: unknown }).constructor; typeof cls === 'function'; ) {
    if (Object.hasOwn(cls, entityKind) && TRANSACTION_KINDS.has((cls as any)[entityKind])) return true;
    const parent: unknown = Object.getPrototypeOf(cls);
    if (parent === cls) break;
    cls = parent;
  }
  return false;
}
