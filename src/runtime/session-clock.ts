import type postgres from 'postgres';
import { PgPubSubError } from '../errors.ts';

/**
 * Guards a claim transaction against `idle_in_transaction_session_timeout` (issue 14, item 4). The
 * server closes a session that sits idle in a transaction longer than that, which is what a claim
 * does while a slow handler runs without querying. Nothing may be sent on the dead session (older
 * postgres.js versions crash the process writing to it), and the handler must be charged an attempt,
 * or the notification is claimed, times out and is claimed again forever.
 */

const limits = new WeakMap<postgres.Sql, number>();

/** The statement that reads the session's limit in ms (0: none), pipelined into the first claim. */
export const IDLE_LIMIT_SQL = `SELECT setting::int8 AS ms FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'`;

/** The cached limit of a client's sessions, or undefined before the first claim read it. */
export function cachedIdleLimit(sql: postgres.Sql): number | undefined {
  return limits.get(sql);
}

/** Remembers the limit read by a claim. */
export function rememberIdleLimit(sql: postgres.Sql, ms: number): void {
  limits.set(sql, ms);
}

/** The error recorded for a handler during which the server closed the claim's session. */
export function idleTimeoutError(idleMs: number, cause?: unknown): PgPubSubError {
  return new PgPubSubError(
    'HANDLER_TIMEOUT',
    `The claim's session was closed by the server after ${Math.round(idleMs)} ms idle in transaction (idle_in_transaction_session_timeout); make the handler faster, raise the timeout, or use timeoutMs.`,
    cause === undefined ? undefined : { cause },
  );
}

/** Thrown before anything is sent on a claim session that has been idle past the server's limit. */
export class SessionExpired extends Error {
  constructor(readonly idleMs: number) {
    super(`The claim session was idle in transaction for ${Math.round(idleMs)} ms, past the server's limit.`);
  }
}

/** Tracks how long the claim's session has been idle in its transaction. */
export class SessionClock {
  private inflight = 0;
  private idleSince = performance.now();

  /** @param limit The server's idle_in_transaction_session_timeout in ms (0: none). */
  constructor(readonly limit: number) {}

  /** Idle time so far (0 while a statement is running). */
  idleMs(): number {
    return this.inflight > 0 ? 0 : performance.now() - this.idleSince;
  }

  /** A statement was answered: the session is idle from now. */
  touch(): void {
    if (this.inflight === 0) this.idleSince = performance.now();
  }

  /** Throws {@link SessionExpired} when the server has (or is about to have) closed the session. */
  assertAlive(): void {
    const idle = this.idleMs();
    // A little early: the server's idle time started before its answer reached us.
    if (this.limit > 0 && idle >= this.limit - Math.min(20, this.limit / 10)) throw new SessionExpired(idle);
  }

  /** Wraps the claim's connection: every statement is checked before it is sent, and timed. */
  wrap(tsql: postgres.ReservedSql): postgres.ReservedSql {
    return new Proxy(tsql, {
      get: (target, key, receiver) => {
        if (key !== 'unsafe') return Reflect.get(target, key, receiver);
        return (...args: Parameters<postgres.ReservedSql['unsafe']>) => {
          this.assertAlive();
          const query = target.unsafe(...args);
          this.inflight++;
          const done = () => {
            this.inflight--;
            this.touch();
          };
          query.then(done, done);
          return query;
        };
      },
    });
  }
}
