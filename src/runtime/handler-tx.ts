import type postgres from 'postgres';
import { PgPubSubError } from '../errors.ts';
import { within } from '../timeouts.ts';
import { isConnectionLost } from './connection-errors.ts';
import { PgHandlerPool } from './drivers/node-postgres.ts';
import type { DrizzleParts } from './drizzle-adapter.ts';

const SAVEPOINT = 'pgpubsub_item';
const SETTLE_MS = 5000;

/** State shared by the handler scopes of one claim transaction. */
export interface ClaimLink {
  /** Set once the claim's connection is known to be gone: send nothing more on it. */
  lost?: unknown;
}

export { assertSupportedDb, type DrizzleParts, drizzleParts } from './drizzle-adapter.ts';

/**
 * One handler's window onto the claim transaction. The savepoint that isolates the handler is only
 * created when the handler first sends a query (pipelined in front of it), so handlers that do not
 * write through `tx` cost no extra round trips. After the handler settles, the scope is closed: a
 * stray late query fails instead of leaking into the next notification's work.
 */
export class HandlerScope {
  private savepoint = false;
  private nested = 0;
  private closedReason: string | undefined;
  private readonly inflight = new Set<postgres.PendingQuery<any>>();
  private real: object | undefined;
  /**
   * The handler's Drizzle transaction. Building one (client proxy, session, database object) costs
   * more than a no-op handler, so handlers get a stand-in that builds it on first use.
   */
  readonly tx: any;

  constructor(
    private readonly tsql: postgres.ReservedSql,
    private readonly parts: DrizzleParts,
    private readonly link: ClaimLink,
  ) {
    this.tx = new Proxy(
      {},
      {
        getPrototypeOf: () => Reflect.getPrototypeOf(this.transaction()),
        get: (_target, key) => Reflect.get(this.transaction(), key),
        set: (_target, key, value) => Reflect.set(this.transaction(), key, value),
        has: (_target, key) => Reflect.has(this.transaction(), key),
        ownKeys: () => Reflect.ownKeys(this.transaction()),
        getOwnPropertyDescriptor: (_target, key) => {
          const descriptor = Reflect.getOwnPropertyDescriptor(this.transaction(), key);
          return descriptor && { ...descriptor, configurable: true };
        },
      },
    );
  }

  /**
   * Builds the handler's transaction ahead of the handler where the driver's Drizzle builds it
   * asynchronously (node-postgres); a no-op on postgres.js, where it is built on first use.
   */
  async prepare(): Promise<void> {
    if (this.parts.driver !== 'node-postgres' || this.real) return;
    const pool = new PgHandlerPool((config, values) => this.run(config, values));
    this.real = (await this.parts.transaction(pool)) as object;
  }

  private transaction(): object {
    if (this.real) return this.real;
    const tsql = this.tsql;
    const client: any = new Proxy(tsql, {
      get: (target, key, receiver) => {
        if (key === 'unsafe') {
          return (query: string, params?: unknown[], opts?: unknown) => this.run(query, params, opts);
        }
        // Drizzle's nested `tx.transaction()` calls client.savepoint(fn).
        if (key === 'savepoint') {
          return (nameOrFn: unknown, maybeFn?: unknown) =>
            this.nestedSavepoint(
              (typeof nameOrFn === 'function' ? nameOrFn : maybeFn) as (c: unknown) => unknown,
              client,
            );
        }
        return Reflect.get(target, key, receiver);
      },
    });
    this.real = this.parts.transaction(client) as object;
    return this.real;
  }

  /** Savepoints this handler opened: its own and those of nested `tx.transaction()` calls. */
  get subtransactions(): number {
    return (this.savepoint ? 1 : 0) + this.nested;
  }

  private open(): void {
    if (this.closedReason) throw new PgPubSubError('ABORTED', this.closedReason);
    if (!this.savepoint) {
      this.savepoint = true;
      this.tsql
        .unsafe(`SAVEPOINT ${SAVEPOINT}`)
        .execute()
        .catch(() => {});
    }
  }

  private async nestedSavepoint(fn: (client: unknown) => unknown, client: unknown): Promise<unknown> {
    const name = `pgpubsub_nested_${++this.nested}`;
    await this.run(`SAVEPOINT ${name}`);
    try {
      const result = await fn(client);
      await this.run(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (error) {
      await this.run(`ROLLBACK TO SAVEPOINT ${name}`);
      throw error;
    }
  }

  private run(query: string | { text?: unknown }, params?: unknown[], opts?: unknown) {
    this.open();
    // node-postgres: a nested `tx.transaction()` is Drizzle's own SAVEPOINT statement.
    if (typeof query === 'object' && /^savepoint\s/i.test(String(query.text))) this.nested++;
    const q = this.tsql.unsafe(query as string, params as any[], opts as any);
    this.inflight.add(q);
    q.then(
      () => this.inflight.delete(q),
      (error) => {
        this.inflight.delete(q);
        if (isConnectionLost(error)) this.link.lost ??= error;
      },
    );
    return q;
  }

  /** Stops further queries and cancels the handler's running ones (timeout or shutdown). */
  abort(reason: string): void {
    this.closedReason ??= reason;
    for (const q of this.inflight) q.cancel();
  }

  /**
   * Waits until the handler's queries have finished (after abort() they are cancelled), at most a few
   * seconds: a query on a connection that was cut may never be answered.
   */
  async settle(): Promise<void> {
    await within(Promise.allSettled([...this.inflight]), SETTLE_MS, () => new Error('settle')).catch(() => {
      this.link.lost ??= new PgPubSubError('DATABASE_UNREACHABLE', 'The claim connection stopped answering.');
    });
  }

  /** Closes the scope after a successful handler; the savepoint is released without a round trip. */
  commit(): void {
    this.closedReason ??= 'This notification was already handled: its transaction cannot be used any more.';
    if (this.savepoint) {
      this.tsql
        .unsafe(`RELEASE SAVEPOINT ${SAVEPOINT}`)
        .execute()
        .catch(() => {});
    }
  }

  /** Undoes the handler's writes after a failure, keeping the rest of the claim transaction. */
  async rollback(): Promise<void> {
    this.closedReason ??= 'This notification was already handled: its transaction cannot be used any more.';
    await this.settle();
    if (this.link.lost) throw this.link.lost;
    if (!this.savepoint) return;
    await within(this.tsql.unsafe(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`), SETTLE_MS, () => {
      this.link.lost ??= new PgPubSubError('DATABASE_UNREACHABLE', 'The claim connection stopped answering.');
      return this.link.lost as Error;
    });
    this.tsql
      .unsafe(`RELEASE SAVEPOINT ${SAVEPOINT}`)
      .execute()
      .catch(() => {});
  }
}
