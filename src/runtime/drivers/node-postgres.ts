/**
 * Everything the listener does on node-postgres (`pg`), in one file: a `pg.Pool` seen through the
 * small postgres.js-shaped surface the runtime uses ({@link pgSql}), the dedicated LISTEN session
 * ({@link pgSessionDriver}), and the client a handler's Drizzle transaction runs on
 * ({@link pgHandlerClient}).
 *
 * `pg` is never imported statically (an app on postgres.js must not load it): {@link loadPg} imports
 * it, and `drizzle-orm/node-postgres`, when a listener on a node-postgres database starts.
 *
 * Differences from postgres.js that the runtime relies on, and how they are met here:
 * - statements on one connection are queued here, in call order: each is handed to `pg` only once the
 *   one before it has settled (postgres.js pipelines them; the order is the same, only the round
 *   trips differ). `pg` 8 queues a `query()` made while another runs too, but deprecates that
 *   (removed in `pg` 9), so it is never relied on ({@link PgConnection.enqueue});
 * - a query is cancelled with `pg_cancel_backend` from another pooled connection, only while the
 *   query is still the one the backend runs;
 * - a connection that is cut rejects with errors that carry no code: they are given the code
 *   `CONNECTION_CLOSED`, so `connection-errors.ts` recognises them;
 * - values are parsed as Drizzle's node-postgres session parses them (dates, timestamps and
 *   intervals as text, `pg`'s parsers for the rest), so decoded row images equal `db.select()`.
 *
 * @module
 */
import type postgres from 'postgres';
import type { SessionConnection, SessionDriver } from '../listen-session.ts';

/** The parts of the `pg` module the listener uses. */
export interface PgModule {
  Client: new (config?: any) => PgClient;
  types: { getTypeParser(oid: number, format?: string): (value: string) => unknown; builtins: any };
}

/** The parts of a `pg.Client` / pooled client the listener uses. */
export interface PgClient {
  query(config: any, values?: unknown[]): Promise<any>;
  connect(): Promise<unknown>;
  end(): Promise<void>;
  on(event: string, fn: (...args: any[]) => void): unknown;
  removeListener(event: string, fn: (...args: any[]) => void): unknown;
  release?(error?: unknown): void;
  processID?: number | null;
}

/** The parts of a `pg.Pool` the listener uses. */
export interface PgPool {
  query(config: any, values?: unknown[]): Promise<any>;
  connect(): Promise<PgClient>;
  end(): Promise<void>;
  on(event: string, fn: (...args: any[]) => void): unknown;
  listenerCount(event: string): number;
  options?: { max?: number } & Record<string, unknown>;
}

/** True when `client` is a `pg.Pool` (or compatible): what `drizzle(pool)` from node-postgres holds. */
export function isPgPool(client: unknown): client is PgPool {
  const c = client as any;
  return (
    typeof c?.query === 'function' &&
    typeof c?.connect === 'function' &&
    typeof c?.unsafe !== 'function' &&
    typeof c?.totalCount === 'number'
  );
}

/** True when `client` is a single `pg.Client` (not a pool). */
export function isPgClient(client: unknown): boolean {
  const c = client as any;
  return (
    typeof c?.query === 'function' &&
    typeof c?.connect === 'function' &&
    typeof c?.unsafe !== 'function' &&
    typeof c?.totalCount !== 'number'
  );
}

/** The pool's `max` (pg's default is 10). */
export function pgPoolMax(pool: PgPool): number {
  const max = pool.options?.max;
  return typeof max === 'number' && max >= 1 ? max : 10;
}

/** What {@link loadPg} loads. */
export interface PgDriver {
  pg: PgModule;
  drizzle: (config: any) => any;
}

/** Loads `pg` and `drizzle-orm/node-postgres` (only ever for a node-postgres database). */
export async function loadPg(): Promise<PgDriver> {
  const [pgModule, drizzleModule] = await Promise.all([import('pg'), import('drizzle-orm/node-postgres')]);
  const pg = ((pgModule as any).default ?? pgModule) as PgModule;
  return { pg, drizzle: (drizzleModule as any).drizzle };
}

/** OIDs Drizzle's node-postgres session reads as text (dates, timestamps, intervals and their arrays). */
const TEXT_OIDS = new Set([1184, 1114, 1082, 1186, 1231, 1115, 1185, 1187, 1182]);

/** The `types` Drizzle's node-postgres session queries with, on drizzle-orm 0.44 to 1.0. */
function typeConfig(pg: PgModule) {
  const text = (value: string) => value;
  return {
    getTypeParser: (oid: number, format?: string) =>
      TEXT_OIDS.has(oid) ? text : pg.types.getTypeParser(oid, format),
  };
}

const LOST_MESSAGES = /Connection terminated|not queryable|Connection closed|connection error/i;

/** Gives a cut connection's code-less error the code `connection-errors.ts` knows. */
function tagLost(error: unknown, lost: boolean): unknown {
  if (typeof error !== 'object' || error === null) return error;
  const e = error as { code?: unknown; message?: unknown };
  if (e.code === undefined && (lost || (typeof e.message === 'string' && LOST_MESSAGES.test(e.message)))) {
    try {
      e.code = 'CONNECTION_CLOSED';
    } catch {}
  }
  return error;
}

type Target = { query(config: any, values?: unknown[]): Promise<any> };

/**
 * One statement, shaped like a postgres.js `PendingQuery`: thenable (rows with `command` and
 * `count`), `.execute()`, `.values()` (rows as arrays) and `.cancel()`. It is sent at the first of
 * those calls. Given a `pg` query config object instead of text, it resolves to `pg`'s own result
 * (Drizzle's node-postgres session reads that).
 */
class PgQuery implements PromiseLike<any> {
  private promise: Promise<any> | undefined;
  private arrays = false;
  private settled = false;
  /** Handed to `pg` (it may run on the server). */
  private sent = false;
  /** Cancelled before it was sent: it never will be. */
  private cancelled = false;

  constructor(
    private readonly target: Target,
    private readonly conn: PgConnection | undefined,
    private readonly text: string | Record<string, unknown>,
    private readonly params: unknown[] | undefined,
  ) {}

  private start(): Promise<any> {
    if (this.promise) return this.promise;
    const raw = typeof this.text !== 'string';
    const config = raw
      ? this.text
      : {
          text: this.text,
          types: this.conn?.types ?? pgTypes,
          ...(this.arrays ? { rowMode: 'array' } : {}),
        };
    const send = () => {
      if (this.cancelled) return Promise.reject(cancelledError());
      const unusable = this.conn?.assertUsable();
      if (unusable) return unusable;
      this.sent = true;
      return this.target.query(config, this.params ?? []);
    };
    this.promise = (this.conn ? this.conn.enqueue(send) : Promise.resolve().then(send)).then(
      (result: any) => {
        this.settled = true;
        if (raw) return result;
        const rows = Array.isArray(result) ? result.at(-1).rows : result.rows;
        return Object.assign(rows, { command: result.command, count: result.rowCount ?? rows.length });
      },
      (error: unknown) => {
        this.settled = true;
        throw tagLost(error, this.conn?.lost ?? false);
      },
    );
    return this.promise;
  }

  execute(): this {
    this.start();
    return this;
  }

  values(): this {
    if (!this.promise) this.arrays = true;
    this.start();
    return this;
  }

  // biome-ignore lint/suspicious/noThenProperty: postgres.js queries are thenables, and so is this one
  then<A = any, B = never>(
    onfulfilled?: ((value: any) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: any) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.start().then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: any) => B | PromiseLike<B>) | null): Promise<any> {
    return this.start().catch(onrejected);
  }

  finally(fn?: (() => void) | null): Promise<any> {
    return this.start().finally(fn);
  }

  /**
   * Cancels the statement: one still waiting in the connection's queue is never sent (it rejects as
   * a cancelled statement does, as on postgres.js); one sent is cancelled if the backend still runs
   * it (a later one is never hit).
   */
  cancel(): void {
    if (this.settled || !this.promise || !this.conn) return;
    if (!this.sent) {
      this.cancelled = true;
      return;
    }
    this.conn.cancel(typeof this.text === 'string' ? this.text : String(this.text.text ?? ''));
  }
}

/** The error of a statement cancelled before it was sent: PostgreSQL's own for a cancelled one. */
function cancelledError(): Error {
  return Object.assign(new Error('canceling statement due to user request'), { code: '57014' });
}

/** The types of the module's first loaded `pg` (every query of a pool uses the same). */
let pgTypes: unknown;

/** A reserved pooled client, postgres.js `ReservedSql`-shaped. */
class PgConnection {
  lost = false;
  private lostError: unknown;
  private released = false;
  private readonly onError = (error: unknown) => {
    this.lost = true;
    this.lostError ??= error;
  };
  private readonly onEnd = () => {
    this.lost = true;
  };

  constructor(
    private readonly pool: PgPool,
    private readonly client: PgClient,
    readonly types: unknown,
  ) {
    client.on('error', this.onError);
    client.on('end', this.onEnd);
  }

  /** Rejects at once (no query is sent on a connection known to be cut). */
  assertUsable(): Promise<never> | undefined {
    if (!this.lost) return undefined;
    const error = new Error('The claim connection was closed.', { cause: this.lostError });
    return Promise.reject(tagLost(error, true));
  }

  /** The last statement handed to this connection, settled or not. */
  private tail: Promise<unknown> = Promise.resolve();

  /**
   * Runs `send` once every statement enqueued before it has settled (resolved or rejected), so the
   * `pg` client never gets a `query()` while another is in flight: `pg` 8 queues such a call itself
   * but warns that this is deprecated ("Calling client.query() when the client is already executing
   * a query …"), and `pg` 9 removes it. Statements go out in call order, one round trip each, exactly
   * as `pg` 8's own queue sends them; a failed statement does not stop the ones behind it (each gets
   * its own answer, as on postgres.js).
   */
  enqueue<T>(send: () => Promise<T>): Promise<T> {
    const result = this.tail.then(send, send);
    this.tail = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  unsafe(text: string | Record<string, unknown>, params?: unknown[]): PgQuery {
    return new PgQuery(this.client, this, text, params);
  }

  cancel(text: string): void {
    const pid = this.client.processID;
    if (typeof pid !== 'number') return;
    this.pool
      .query(
        `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query = $2`,
        [pid, text],
      )
      .catch(() => {});
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.client.removeListener('end', this.onEnd);
    if (!this.lost) this.client.removeListener('error', this.onError);
    // A cut connection is destroyed, not given back to the pool.
    this.client.release?.(this.lost ? (this.lostError ?? new Error('connection lost')) : undefined);
  }

  /**
   * Drops the connection (cut, or not answering its ROLLBACK): `pg.Pool` closes it instead of taking
   * it back, so it is never reused mid-transaction, and `pool.end()` does not wait for it.
   */
  discard(): void {
    this.lost = true;
    this.lostError ??= new Error('The claim connection was discarded.');
    this.release();
  }
}

/**
 * A `pg.Pool` as the postgres.js-shaped `Sql` the runtime uses: `unsafe()`, `reserve()`, `begin()`
 * and `options.max`. Queries run as Drizzle's node-postgres session runs them (its type parsers).
 */
export function pgSql(pool: PgPool, pg: PgModule): postgres.Sql {
  const types = typeConfig(pg);
  pgTypes ??= types;
  const sql = {
    options: { max: pgPoolMax(pool) },
    unsafe: (text: string, params?: unknown[]) =>
      new PgQuery(
        { query: (config, values) => pool.query({ ...config, types }, values) },
        undefined,
        text,
        params,
      ),
    reserve: async () => new PgConnection(pool, await pool.connect(), types),
    /**
     * postgres.js's `sql.begin(fn)`: fn runs in a transaction on one pooled connection, committed
     * when fn resolves, rolled back when it throws (the schedule runner's fence and slots).
     */
    begin: async <T>(fn: (tx: PgConnection) => Promise<T>): Promise<T> => {
      const conn = new PgConnection(pool, await pool.connect(), types);
      try {
        await conn.unsafe('BEGIN');
        const result = await fn(conn);
        await conn.unsafe('COMMIT');
        return result;
      } catch (error) {
        // A connection that cannot roll back is dropped, never reused mid-transaction.
        await Promise.resolve(conn.unsafe('ROLLBACK')).catch(() => conn.discard());
        throw error;
      } finally {
        conn.release();
      }
    },
    end: () => pool.end(),
  };
  return sql as unknown as postgres.Sql;
}

/**
 * The client a handler's Drizzle transaction (`drizzle-orm/node-postgres`) runs on: its queries go
 * through `run` (the handler scope: savepoint, cancel, closed-scope checks). Named `…Pool` so that
 * Drizzle's `transaction()` asks it for a connection (itself) and releases it (a no-op).
 */
export class PgHandlerPool {
  /** While the transaction object is being built: Drizzle's own BEGIN/COMMIT are not sent. */
  building = true;

  constructor(
    private readonly run: (config: Record<string, unknown>, values?: unknown[]) => PromiseLike<unknown>,
  ) {}

  async connect(): Promise<this> {
    return this;
  }

  query(config: any, values?: unknown[]): PromiseLike<unknown> {
    if (this.building) return Promise.resolve({ rows: [], command: 'BEGIN', rowCount: 0, fields: [] });
    return this.run(typeof config === 'string' ? { text: config } : config, values);
  }

  release(): void {}
  on(): this {
    return this;
  }
  off(): this {
    return this;
  }
  removeListener(): this {
    return this;
  }
}

/**
 * A {@link SessionDriver} for node-postgres: a dedicated `pg.Client` per session, made with the
 * pool's own options (as `pg.Pool` makes its clients), or from `listenUrl`.
 */
export function pgSessionDriver(pool: PgPool, pg: PgModule, listenUrl?: string): SessionDriver {
  return {
    async connect(events) {
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        events.onClose();
      };
      const Client = ((pool as any).Client as PgModule['Client'] | undefined) ?? pg.Client;
      const client = new Client(listenUrl ? { connectionString: listenUrl } : { ...pool.options });
      client.on('error', close);
      client.on('end', close);
      client.on('notification', (message: { channel: string; payload?: string }) => {
        if (!closed) events.onNotify(message.channel, message.payload ?? '');
      });
      const connection: SessionConnection = {
        async query(text, params) {
          if (closed) throw new Error('the LISTEN session is closed');
          const result = await client.query({ text, types: typeConfig(pg) }, params);
          if (closed) throw new Error('the LISTEN session closed');
          return result.rows as Record<string, unknown>[];
        },
        async end() {
          closed = true;
          await client.end().catch(() => {});
        },
      };
      try {
        await client.connect();
        await connection.query('SELECT 1', []);
      } catch (error) {
        closed = true;
        await client.end().catch(() => {});
        throw error;
      }
      return connection;
    },
  };
}
