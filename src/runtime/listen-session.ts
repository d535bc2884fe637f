import { randomInt } from 'node:crypto';
import { quoteIdent } from '../identifiers.ts';
import {
  LISTEN_SESSION_MARK,
  type ListenerPresence,
  presenceSql,
  wakeLockTag,
} from '../storage/sql-names.ts';
import type { WakeKey } from './idle.ts';

/**
 * The listener's own LISTEN session: one dedicated database connection that LISTENs on every channel
 * and holds the wake-up locks of idle.ts (`(class, key)` exclusive, `(class, 0)` shared), so the
 * wake-up flags live and die with it. It uses no driver internals: a driver only has to open one
 * plain session ({@link SessionDriver}); the postgres.js one is in `drivers/postgres-js.ts`, the
 * node-postgres one (a dedicated `pg.Client`) in `drivers/node-postgres.ts`.
 *
 * On connection loss it reconnects with backoff, LISTENs again, takes a NEW key (the old session's
 * flags stop counting with its locks) and calls `onReconnect`, which sweeps every channel.
 */

/** One dedicated database session, as a driver opens it. */
export interface SessionConnection {
  /** Runs one statement on this session (never on another one); rejects if the session is gone. */
  query(text: string, params: unknown[]): Promise<Record<string, unknown>[]>;
  /** Closes the session (its advisory locks and LISTENs end with it). */
  end(): Promise<void>;
}

/** What a session reports to its owner. */
export interface SessionEvents {
  /** A NOTIFY arrived on a channel the session LISTENs on. */
  onNotify(channel: string, payload: string): void;
  /** The session is gone (network, server restart, terminated backend). Called at most once. */
  onClose(): void;
}

/** Opens dedicated sessions: the only part of a LISTEN session that depends on the driver. */
export interface SessionDriver {
  /** Opens a new session and resolves once it is connected. */
  connect(events: SessionEvents): Promise<SessionConnection>;
}

/** What a {@link ListenSession} tells the listener. */
export interface ListenSessionHandlers {
  onNotify(channel: string, payload: string): void;
  /** The session was replaced after a loss: LISTENing again, with a new key. Sweep every channel. */
  onReconnect(oldKey: number | null): void;
  onError(error: unknown, during: string): void;
  /**
   * What the session publishes about its listener (host, pid, channels, last claim) as its last
   * statement, read by `status()` and the dashboard from `pg_stat_activity`.
   */
  presence?: () => ListenerPresence;
}

/** Delay before the `attempt`-th reconnect (1-based): 100 ms doubling, at most 5 s, ±20%. */
function reconnectDelay(attempt: number): number {
  return Math.min(100 * 2 ** (attempt - 1), 5000) * (0.8 + Math.random() * 0.4);
}

/** The LISTEN session of one listener (see the top of this file). */
export class ListenSession implements WakeKey {
  private conn: SessionConnection | undefined;
  private current: number | null = null;
  private closing = false;
  private reconnecting: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly lockTag: string;

  constructor(
    private readonly driver: SessionDriver,
    private readonly channels: readonly string[],
    schema: string,
    private readonly handlers: ListenSessionHandlers,
  ) {
    this.lockTag = wakeLockTag(schema);
  }

  /** The key of the wake-up lock this session holds; null while (re)connecting or closed. */
  get key(): number | null {
    return this.current;
  }

  /** Connects, LISTENs on every channel and takes the locks. Rejects (and leaves nothing) on failure. */
  async open(): Promise<void> {
    await this.establish();
  }

  private async establish(): Promise<void> {
    let lost = false;
    let conn: SessionConnection | undefined;
    conn = await this.driver.connect({
      onNotify: (channel, payload) => this.handlers.onNotify(channel, payload),
      onClose: () => {
        lost = true;
        if (conn !== undefined && this.conn === conn) this.lost();
      },
    });
    try {
      for (const name of this.channels) {
        await conn.query(`${LISTEN_SESSION_MARK} LISTEN ${quoteIdent(name)}`, []);
      }
      this.current = await this.lock(conn);
      if (this.handlers.presence) await conn.query(presenceSql(this.handlers.presence()), []);
      if (lost || this.closing) throw new Error('the LISTEN session closed while it was set up');
      this.conn = conn;
    } catch (error) {
      this.current = null;
      await conn.end().catch(() => {});
      throw error;
    }
  }

  /**
   * Takes the session's exclusive lock `(class, key)` with a random nonzero key, and the presence lock
   * `(class, 0)` shared, in one statement. A miss (a key in use, or a REPEATABLE READ producer
   * testing the presence lock this instant) tries another key.
   */
  private async lock(conn: SessionConnection): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const key = randomInt(1, 2 ** 31 - 1) * (randomInt(2) === 0 ? 1 : -1);
      const [row] = await conn.query(
        `${LISTEN_SESSION_MARK} SELECT pg_try_advisory_lock(hashtext($1), $2::int) AS mine,
  pg_try_advisory_lock_shared(hashtext($1), 0) AS present`,
        [this.lockTag, key],
      );
      if (row?.mine === true && row.present === true) return key;
      // Undo whichever half was taken, then try again.
      await conn.query(
        `SELECT CASE WHEN $3::boolean THEN pg_advisory_unlock(hashtext($1), $2::int) END,
  CASE WHEN $4::boolean THEN pg_advisory_unlock_shared(hashtext($1), 0) END`,
        [this.lockTag, key, row?.mine === true, row?.present === true],
      );
      if (attempt >= 50) throw new Error('could not take a wake-up lock for the LISTEN session');
      await new Promise((resolve) => setTimeout(resolve, 2 + attempt));
    }
  }

  /**
   * Publishes the listener's presence again (a constant SELECT on the idle LISTEN session: no write,
   * no lock). Errors are ignored: a lost session reconnects and publishes on its own.
   */
  async publish(): Promise<void> {
    const conn = this.conn;
    if (conn === undefined || this.closing || !this.handlers.presence) return;
    await conn.query(presenceSql(this.handlers.presence()), []).catch(() => {});
  }

  /** The current session is gone: reconnect with backoff until it works or the session is closed. */
  private lost(): void {
    const oldKey = this.current;
    this.current = null;
    this.conn = undefined;
    if (this.closing || this.reconnecting) return;
    this.reconnecting = (async () => {
      for (let attempt = 1; !this.closing; attempt++) {
        await new Promise<void>((resolve) => {
          this.retry = setTimeout(resolve, reconnectDelay(attempt));
        });
        if (this.closing) return;
        try {
          await this.establish();
          break;
        } catch (error) {
          if (!this.closing) this.handlers.onError(error, 'reconnecting the LISTEN session');
        }
      }
      if (this.closing) return;
      this.reconnecting = undefined;
      this.handlers.onReconnect(oldKey);
      // Lost again before this one was done: start over.
      if (this.conn === undefined && !this.closing) this.lost();
    })();
  }

  /** Closes the session: its LISTENs and locks end with it (the flags stop counting at once). */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retry);
    this.current = null;
    const conn = this.conn;
    this.conn = undefined;
    await conn?.end().catch(() => {});
  }
}
