/**
 * Everything that depends on which drizzle-orm version is installed, in one file (0.44/0.45 and 1.0
 * today): the next Drizzle release should be a change here only.
 *
 * Handlers get a real Drizzle transaction built through public API: one Drizzle database per
 * listener from the driver's own `drizzle()` factory, configured like the user's (relational schema
 * or relations, logger, casing), whose client's `begin` hands Drizzle the claim connection instead
 * of opening a transaction. `db.transaction(fn)` then builds its transaction object over that
 * connection and passes it to `fn` synchronously, on every supported version; no BEGIN or COMMIT
 * is sent (the claim transaction owns those).
 *
 * The only reads of Drizzle internals left are those of the user's configuration from `db`, below
 * in {@link drizzleConfig}, used only for what the listener's `drizzle` option does not give; each
 * has a fallback, and none is needed for plain (non-relational) use.
 *
 * @module
 */

import { sql } from 'drizzle-orm';
import type { Column } from 'drizzle-orm/column';
import { type ColumnCasing, columnNamer } from '../casing.ts';
import { PgPubSubError } from '../errors.ts';
import type { ColumnCodecs } from './decode.ts';
import { isPgClient, isPgPool, type PgDriver, type PgHandlerPool } from './drivers/node-postgres.ts';
import { isPostgresJs, type PostgresJsDriver, postgresTransactionClient } from './drivers/postgres-js.ts';

/** What the listener needs from the user's Drizzle database, read once per database. */
export interface DrizzleParts {
  /** The `casing` of the user's database (drizzle-orm 0.x only), for decoding row images. */
  casing: ColumnCasing | undefined;
  /** Names, selects and reads columns exactly as `db.select()` does. */
  columns: ColumnCodecs;
  /** The database's driver. */
  driver: DriverKind;
  /**
   * A Drizzle transaction object whose queries go through `client` (postgres.js: a postgres.js-like
   * client, the claim connection wrapped by the handler scope, and the object is returned at once;
   * node-postgres: a `PgHandlerPool`, and a promise of it). Nothing is sent to build it.
   */
  transaction(client: unknown): unknown;
}

/** The user's Drizzle configuration, as far as it matters to a handler's `tx`. */
export interface DrizzleConfig {
  casing: ColumnCasing | undefined;
  /** drizzle-orm 0.x: the relational schema (`drizzle(client, { schema })`). */
  schema: Record<string, unknown> | undefined;
  /** drizzle-orm 1.0: the relations (`drizzle({ client, relations })`). */
  relations: Record<string, unknown> | undefined;
  logger: unknown;
}

/**
 * The user's Drizzle settings as the listener's `drizzle` option passes them (`createListener(db,
 * { drizzle: { relations, logger } })`): they win over what is read from `db`, so nothing depends on
 * Drizzle's internals when they are given.
 */
export interface DrizzleSettings {
  /** drizzle-orm 0.x: the relational schema given to `drizzle({ schema })`, for `tx.query…`. */
  schema?: Record<string, unknown>;
  /** drizzle-orm 1.0: the relations given to `drizzle({ relations })`, for `tx.query…`. */
  relations?: Record<string, unknown>;
  /** The Drizzle query logger given to `drizzle({ logger })` (`true` for Drizzle's default logger). */
  logger?: unknown;
  /** drizzle-orm 0.x: the `casing` given to `drizzle({ casing })`. */
  casing?: ColumnCasing;
}

const cache = new WeakMap<object, DrizzleParts>();

const unsupported = () =>
  new PgPubSubError(
    'UNSUPPORTED_DATABASE',
    'createListener(db) needs a Drizzle database on postgres.js (`drizzle({ client: postgres(url) })` from drizzle-orm/postgres-js) or on a node-postgres Pool (`drizzle({ client: new Pool(…) })` from drizzle-orm/node-postgres).',
  );

/** The casing a 0.x database was created with, told from what its converter does. */
function casingOf(db: any): ColumnCasing | undefined {
  const convert = db?.dialect?.casing?.convert;
  if (typeof convert !== 'function') return undefined;
  if (convert('fooBar') === 'foo_bar') return 'snake_case';
  if (convert('foo_bar') === 'fooBar') return 'camelCase';
  return undefined;
}

/**
 * Reads the user's configuration from a Drizzle database. drizzle-orm 1.0 keeps the relations on
 * `db._.relations` and has no database-level casing; 0.x keeps the relational schema on
 * `db._.fullSchema` and the casing on its dialect. The logger sits in the session's options on both.
 */
export function drizzleConfig(db: unknown, settings: DrizzleSettings = {}): DrizzleConfig {
  const anyDb = db as any;
  let read: DrizzleConfig;
  try {
    const meta = anyDb?._ ?? {};
    const v1 = 'relations' in meta;
    read = {
      casing: v1 ? undefined : casingOf(anyDb),
      schema: !v1 && meta.schema ? meta.fullSchema : undefined,
      relations: v1 && meta.relations && Object.keys(meta.relations).length > 0 ? meta.relations : undefined,
      logger: (meta.session ?? anyDb?.session)?.options?.logger,
    };
  } catch {
    read = { casing: undefined, schema: undefined, relations: undefined, logger: undefined };
  }
  return {
    casing: settings.casing ?? read.casing,
    schema: settings.schema ?? read.schema,
    relations: settings.relations ?? read.relations,
    logger: settings.logger ?? read.logger,
  };
}

/** The driver modules the listener loaded (`ready()`), dynamically: the one its database is on. */
export interface LoadedDrivers {
  pg?: PgDriver | undefined;
  postgresJs?: PostgresJsDriver | undefined;
}

/** The driver under a Drizzle database the listener runs on. */
export type DriverKind = 'postgres-js' | 'node-postgres';

/**
 * Which driver `db` is on; throws `UNSUPPORTED_DATABASE` unless it is a Drizzle database on
 * postgres.js or on a node-postgres `pg.Pool`.
 */
export function assertSupportedDb(db: unknown): DriverKind {
  const anyDb = db as any;
  const client = anyDb?.$client;
  if (typeof anyDb?.transaction === 'function') {
    if (isPostgresJs(client)) return 'postgres-js';
    if (isPgPool(client)) return 'node-postgres';
    if (isPgClient(client)) {
      throw new PgPubSubError(
        'UNSUPPORTED_DATABASE',
        'createListener(db) needs a node-postgres Pool, not a single pg.Client: a listener runs claims on several connections at once. Create the database with `drizzle({ client: new Pool({ connectionString }) })`.',
      );
    }
  }
  throw unsupported();
}

/**
 * Checks that `db` is a Drizzle database on postgres.js or node-postgres and prepares what handler
 * transactions and decoders need; throws `UNSUPPORTED_DATABASE` on anything else. `pg` is what
 * `drivers/node-postgres.ts` loaded (required on node-postgres). Cached per database when no
 * `settings` are given.
 */
export function drizzleParts(
  db: unknown,
  settings?: DrizzleSettings,
  drivers: LoadedDrivers = {},
): DrizzleParts {
  const anyDb = db as any;
  const driver = assertSupportedDb(anyDb);
  const known = settings === undefined ? cache.get(anyDb) : undefined;
  if (known) return known;
  const config = drizzleConfig(anyDb, settings);
  const options = {
    ...(config.casing === undefined ? {} : { casing: config.casing }),
    ...(config.schema === undefined ? {} : { schema: config.schema }),
    ...(config.relations === undefined ? {} : { relations: config.relations }),
    ...(config.logger === undefined ? {} : { logger: config.logger }),
  };
  const parts =
    driver === 'postgres-js'
      ? postgresJsParts(anyDb, config, options, drivers.postgresJs)
      : nodePgParts(anyDb, config, options, drivers.pg);
  if (settings === undefined) cache.set(anyDb, parts);
  return parts;
}

const notSynchronous = () =>
  new PgPubSubError(
    'UNSUPPORTED_DATABASE',
    'This drizzle-orm version does not build its transaction objects as expected; drizzle-pgpubsub supports drizzle-orm 0.44, 0.45 and 1.0.',
  );

/**
 * postgres.js: one Drizzle database per listener over a client whose `begin(fn)` runs fn on the
 * claim connection at once; `transaction(fn)` hands its transaction object to fn synchronously.
 */
function postgresJsParts(
  db: any,
  config: DrizzleConfig,
  options: object,
  postgresJs: PostgresJsDriver | undefined,
): DrizzleParts {
  if (!postgresJs) {
    throw new Error('drizzle-pgpubsub: postgres.js was not loaded before the listener started');
  }
  let pending: unknown;
  const inner: any = postgresJs.drizzle({
    client: postgresTransactionClient(db.$client, () => pending),
    ...options,
  } as any);
  return {
    driver: 'postgres-js',
    casing: config.casing,
    columns: columnCodecs(config.casing, db, inner),
    transaction(claimClient) {
      let tx: unknown;
      pending = claimClient;
      try {
        inner
          .transaction(async (t: unknown) => {
            tx = t;
          })
          .catch(() => {});
      } finally {
        pending = undefined;
      }
      if (tx === undefined) throw notSynchronous();
      return tx;
    },
  };
}

/**
 * node-postgres: one Drizzle database per listener (from `drizzle-orm/node-postgres`'s own
 * `drizzle()`) over a pool-like router whose `connect()` gives the handler's client
 * (`PgHandlerPool`); `transaction(fn)` awaits that connection, so the transaction object is built
 * asynchronously, before the handler runs, with Drizzle's BEGIN and COMMIT held back.
 */
function nodePgParts(
  db: any,
  config: DrizzleConfig,
  options: object,
  pg: PgDriver | undefined,
): DrizzleParts {
  if (!pg) throw new Error('drizzle-pgpubsub: node-postgres was not loaded before the listener started');
  let pending: PgHandlerPool | undefined;
  class RouterPool {
    connect(): Promise<PgHandlerPool> {
      const client = pending;
      return client ? Promise.resolve(client) : Promise.reject(notSynchronous());
    }
    query(): never {
      throw notSynchronous();
    }
  }
  // drizzle-orm 0.44 opens a transaction on a fresh pooled client only for `client instanceof
  // pg.Pool` (else it sends BEGIN through `query()`): the router passes for one, with its own methods.
  const PgPoolClass = (pg.pg as unknown as { Pool?: { prototype: object } }).Pool;
  if (PgPoolClass) Object.setPrototypeOf(RouterPool.prototype, PgPoolClass.prototype);
  const inner: any = pg.drizzle({ client: new RouterPool(), ...options });
  return {
    driver: 'node-postgres',
    casing: config.casing,
    columns: columnCodecs(config.casing, db, inner),
    async transaction(client) {
      const handlerPool = client as PgHandlerPool;
      let tx: unknown;
      pending = handlerPool;
      let built: Promise<unknown>;
      try {
        built = inner.transaction(async (t: unknown) => {
          tx = t;
        });
      } finally {
        pending = undefined;
      }
      await built;
      handlerPool.building = false;
      if (tx === undefined) throw notSynchronous();
      return tx;
    },
  };
}

/** drizzle-orm 1.0's `CodecsCollection` (a dialect's `codecs`), as far as decoding uses it. */
interface Codecs {
  get(column: Column, kind: 'cast' | 'normalize'): ((value: any, dimensions?: number) => any) | undefined;
}

/**
 * How `db.select()` names, selects and reads a column. drizzle-orm 0.x: the casing, and the column's
 * `mapFromDriverValue`. drizzle-orm 1.0 moved part of the conversion into the dialect's codecs (per
 * driver, and a user's `drizzle({ codecs })`): a `cast` wraps the column in the SELECT (e.g.
 * `::text[]` for arrays of dates), a `normalize` runs on the driver's value before
 * `mapFromDriverValue` (e.g. `BigInt` for `bigint({ mode: 'bigint' })`, text to `Date` for
 * timestamps), exactly as its result mappers chain them. The codecs are the user's database's, or
 * those of the listener's own Drizzle database on the same driver.
 */
function columnCodecs(casing: ColumnCasing | undefined, db: any, inner: any): ColumnCodecs {
  const namer = columnNamer(casing);
  const dialect = typeof db?.dialect?.codecs?.get === 'function' ? db.dialect : inner?.dialect;
  const codecs: Codecs | undefined = typeof dialect?.codecs?.get === 'function' ? dialect.codecs : undefined;
  if (!codecs) return namer;
  const dimensionsOf = (column: Column) => (column as { dimensions?: number }).dimensions;
  return {
    getColumnCasing: namer.getColumnCasing,
    select(column, expression) {
      const cast = codecs.get(column, 'cast');
      if (!cast) return expression;
      const query = dialect.sqlToQuery(cast(sql.raw(expression), dimensionsOf(column)));
      return query.params.length === 0 ? query.sql : expression;
    },
    read(column, value) {
      const normalize = codecs.get(column, 'normalize');
      const normalized = normalize ? normalize(value, dimensionsOf(column)) : value;
      return column.mapFromDriverValue(normalized);
    },
  };
}
