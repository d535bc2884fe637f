import type postgres from 'postgres';
import { arrayLiteral, quoteLiteral } from '../identifiers.ts';
import { blockedSql, PROBE_WINDOW, windowSql } from '../storage/ordered.ts';
import {
  expandFunctionRef,
  notificationsRef,
  pendingAndDue,
  pendingScheduled,
  wakeLockTag,
  wakeupsRef,
} from '../storage/sql-names.ts';

const PREPARED = { prepare: true } as const;

/** The key of the LISTEN session's wake-up lock (null while it is (re)connecting): see listen-session.ts. */
export interface WakeKey {
  readonly key: number | null;
}

/** What a probe found for one channel. */
export interface ProbeResult {
  channel: string;
  /** Some notification is ready now and not locked by another listener. */
  ready: boolean;
  /** Earliest future `run_at` (retries), in epoch ms of this process's clock, or null. */
  nextRunAt: number | null;
  /** Transactions in progress when the probe ran (xid8 as text). */
  inProgress: string[];
}

/**
 * The idle / wake-up protocol, all of it: the SQL (this class) and the per-channel flag state
 * ({@link IdleProtocol}) the scheduler drives.
 *
 * Flags follow live listener sessions. Producers NOTIFY only while a channel has an idle flag (a
 * `wakeups` row `(channel, key)`) of a live LISTEN session, so busy listeners cost the write path
 * nothing. Every listener has a LISTEN session of its own (listen-session.ts), which holds the
 * advisory lock `(class, key)` with a random key (a new one per session) and the presence lock
 * `(class, 0)` shared. A READ COMMITTED producer counts a flag only while its shared try-lock on
 * `(class, key)` fails, i.e. while that session lives: flags of a listener that stopped (it deletes
 * them), died or lost its session cost writers a try-lock, never a NOTIFY, and the next listener to
 * start deletes them (`prune`).
 *
 * No loss. A listener that runs out of work sets its flag (its session already holds the lock and
 * already LISTENs), then probes in a snapshot taken after the flag committed. A producer either
 * (a) read the flag after it committed: it NOTIFYs at its commit, and the LISTEN receives it; or
 * (b) read it before: then the producer already had its transaction id (it reads the flag after
 * writing its row, in a new statement), so it is committed before the probe's snapshot (the probe
 * sees its row) or in that snapshot's in-progress list. The listener waits for that list (at most
 * `idleWaitMs`, cut short as soon as work is ready) and probes again; xids still running after that
 * are watched (`watch`: `pg_xact_status` only, with backoff up to 5 s or the sweep interval) and the
 * channel is probed when one of them ends, so a slow producer is announced within that backoff of
 * its commit, even with `pollIntervalMs: false`. REPEATABLE READ and SERIALIZABLE producers read an
 * older snapshot, so they NOTIFY whenever some listener session holds the presence lock (locks are
 * read live, after the producer has its xid: a session that takes the lock later probes later, and
 * sees the producer's row or its xid in progress). When the LISTEN session is replaced (reconnect),
 * the listener LISTENs again, takes a new key, and sweeps every channel (`reconnected`): a NOTIFY lost
 * while disconnected is covered by that sweep, and the flags are set again with the new key.
 * A producer that ran `withoutWakeup(tx)` sends no NOTIFY: its row waits for the safety sweep or the
 * channel's next wake-up.
 */
class WakeupSql {
  private readonly wakeups: string;
  private readonly notifications: string;
  private readonly expand: string;

  private readonly lockTag: string;

  constructor(
    private readonly sql: postgres.Sql,
    schema: string,
    private readonly filter: string | null,
    private readonly session: WakeKey,
    private readonly ordered: ReadonlyMap<string, 'block' | 'skip'> = new Map(),
    private readonly packedChannels: ReadonlySet<string> = new Set(),
  ) {
    this.wakeups = wakeupsRef(schema);
    this.notifications = notificationsRef(schema);
    this.expand = expandFunctionRef(schema);
    this.lockTag = wakeLockTag(schema);
  }

  private pin: Promise<boolean> | undefined;

  /** Whether the database or role defaults to REPEATABLE READ or SERIALIZABLE (asked once). */
  private pinned(): Promise<boolean> {
    this.pin ??= this.sql
      .unsafe(`SELECT current_setting('default_transaction_isolation') <> 'read committed' AS pin`)
      .then(
        ([row]) => row?.pin === true,
        (error) => {
          this.pin = undefined;
          throw error;
        },
      );
    return this.pin;
  }

  /**
   * Runs one statement in a transaction of its own. Each statement here needs only its own snapshot,
   * but under a REPEATABLE READ or SERIALIZABLE default the flag upserts and the probe's `FOR UPDATE
   * SKIP LOCKED` fail on rows that concurrent claims changed ("could not serialize access"): then
   * the statement runs in an explicit READ COMMITTED transaction, pipelined in one round trip.
   */
  private async run(
    text: string,
    params: unknown[],
    conn?: postgres.ReservedSql,
  ): Promise<postgres.RowList<postgres.Row[]>> {
    const args = params as postgres.ParameterOrJSON<never>[];
    if (!(await this.pinned())) return (conn ?? this.sql).unsafe(text, args, PREPARED);
    const c = conn ?? (await this.sql.reserve());
    try {
      // A failed statement turns the pipelined COMMIT into a rollback; the statement's error is thrown.
      const [, rows] = await Promise.all([
        c.unsafe('BEGIN ISOLATION LEVEL READ COMMITTED').execute(),
        c.unsafe(text, args, PREPARED).execute(),
        c.unsafe('COMMIT').execute(),
      ]);
      return rows;
    } finally {
      if (!conn) c.release();
    }
  }

  /** Deletes the flags of `key` (a listener's own, when it stops or changed its session). */
  async release(key: number): Promise<void> {
    await this.run(`DELETE FROM ${this.wakeups} WHERE "key" = $1`, [key]);
  }

  /**
   * Deletes flags whose session is gone: no session holds their lock. A flag is written only after
   * its session took the lock, so a flag being set now is never taken for stale.
   */
  async prune(): Promise<number> {
    const rows = await this.run(
      `DELETE FROM ${this.wakeups} w WHERE w."key"::oid NOT IN (SELECT l.objid FROM pg_catalog.pg_locks l
  WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.mode = 'ExclusiveLock' AND l.granted
    AND l.classid = hashtext($1)::oid
    AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
RETURNING 1`,
      [this.lockTag],
    );
    return rows.length;
  }

  private setIdleSql(): string {
    return `INSERT INTO ${this.wakeups} AS w ("channel", "key", "idle") VALUES ($1, $3, $2)
       ON CONFLICT ("channel", "key") DO UPDATE SET "idle" = EXCLUDED."idle" WHERE w."idle" IS DISTINCT FROM EXCLUDED."idle"`;
  }

  /** Sets or clears this listener's idle flag of a channel (nothing while its session reconnects). */
  async setIdle(channel: string, idle: boolean): Promise<void> {
    const key = this.session.key;
    if (key === null) return;
    await this.run(this.setIdleSql(), [channel, idle, key]);
  }

  /**
   * Sets the idle flag, then probes, in one round trip: both statements are pipelined on one
   * connection, each in its own transaction, so the probe's snapshot is taken after the flag committed.
   */
  async setIdleAndProbe(channel: string): Promise<ProbeResult | undefined> {
    // Reconnecting: no flag can be set now; the reconnect sweeps every channel and sets it then.
    const key = this.session.key;
    if (key === null) return (await this.probe([channel]))[0];
    const conn = await this.sql.reserve();
    try {
      const flag = this.run(this.setIdleSql(), [channel, true, key], conn);
      const probe = this.probe([channel], conn);
      flag.catch(() => {});
      probe.catch(() => {});
      await flag;
      return (await probe)[0];
    } finally {
      conn.release();
    }
  }

  /**
   * Whether a notification of `channel` (an SQL expression) is ready and not held by another
   * listener; `filterParam` is the placeholder of the listener's context filter.
   */
  private readySql(channel: string, filterParam: string): string {
    const filter = this.filter === null ? '' : ` AND n."context" @> ${filterParam}::text::jsonb`;
    // Packed rows (storage version 5) are work too: the probe expands the oldest one of the channel
    // and is ready when that produced notifications. Not a look at the packed table: a row another
    // listener is expanding, or one whose expansion fails, would then read as ready while no claim
    // can take anything, and the idle listener would claim again at once, in a loop. A failing
    // expansion fails the probe instead (errors back off), and a busy expander leaves it not ready.
    const names = [...this.packedChannels].map(quoteLiteral);
    const packed =
      names.length === 0
        ? ''
        : ` OR (${channel} IN (${names.join(', ')}) AND ${this.expand}(${channel}, ${this.filter === null ? 'NULL' : `${filterParam}::text::jsonb`}) > 0)`;
    const plain = `((SELECT n."id" FROM ${this.notifications} n WHERE n."channel" = ${channel} AND ${pendingAndDue('n')}${filter}
   ORDER BY n."run_at", n."id" LIMIT 1 FOR UPDATE SKIP LOCKED) IS NOT NULL${packed})`;
    if (this.ordered.size === 0) return plain;
    // Ordered channels: ready means a head of its key within the first rows of claim order, what a
    // claim would take (runtime/ordered-sql.ts); a blocked row is not ready, or an idle listener
    // would claim nothing, again and again.
    const cases = (['block', 'skip'] as const).flatMap((mode) => {
      const names = [...this.ordered].filter(([, m]) => m === mode).map(([name]) => quoteLiteral(name));
      if (names.length === 0) return [];
      const window = windowSql(this.notifications, channel, filter.replaceAll('n."', 'w."'), PROBE_WINDOW);
      return [
        `WHEN ${channel} IN (${names.join(', ')}) THEN (SELECT n."id" FROM ${this.notifications} n WHERE n."id" = ANY(${window}) AND n."channel" = ${channel} AND ${pendingAndDue('n')} AND NOT ${blockedSql(this.notifications, 'n', mode)}
   ORDER BY n."run_at", n."id" LIMIT 1 FOR UPDATE OF n SKIP LOCKED) IS NOT NULL`,
      ];
    });
    return `CASE ${cases.join('\n   ')} ELSE ${plain} END`;
  }

  /** One statement that checks every given channel for ready and scheduled work. */
  async probe(channels: string[], conn?: postgres.ReservedSql): Promise<ProbeResult[]> {
    const filter = this.filter === null ? '' : ` AND n."context" @> $2::text::jsonb`;
    const rows = await this.run(
      `SELECT c.name AS channel,
  ${this.readySql('c.name', '$2')} AS ready,
  (extract(epoch FROM (SELECT min(n."run_at") FROM ${this.notifications} n
   WHERE n."channel" = c.name AND ${pendingScheduled('n')}${filter}) - now()) * 1000)::float8 AS next_run_in,
  array(SELECT pg_snapshot_xip(pg_current_snapshot())::text) AS in_progress
FROM jsonb_array_elements_text($1::text::jsonb) AS c(name)`,
      this.filter === null ? [JSON.stringify(channels)] : [JSON.stringify(channels), this.filter],
      conn,
    );
    return rows.map((r) => ({
      channel: r.channel as string,
      ready: r.ready as boolean,
      // A delay measured on the database's clock, turned into this process's: a clock skew between
      // the two must not make a listener wake too early, again and again (issue 14, item 16).
      nextRunAt: r.next_run_in === null ? null : Date.now() + Math.max(0, r.next_run_in as number),
      inProgress: r.in_progress as string[],
    }));
  }

  /**
   * Waits (polling, with backoff) until none of `xids` is in progress (`done`), work is ready on the
   * channel (`ready`: a producer among them committed, no need to wait for unrelated long
   * transactions), or `deadline` passes or `cancelled()` (`stopped`).
   */
  async waitFor(
    channel: string,
    xids: string[],
    deadline: number,
    cancelled: () => boolean,
  ): Promise<'done' | 'ready' | 'stopped'> {
    const query = `SELECT array(SELECT x::text FROM unnest($1::xid8[]) AS x WHERE pg_xact_status(x) = 'in progress') AS pending,
  ${this.readySql('$2', '$3')} AS ready`;
    let pending = xids;
    let polls = 0;
    while (pending.length > 0) {
      if (cancelled() || Date.now() >= deadline) return 'stopped';
      await new Promise((resolve) => setTimeout(resolve, waitDelayMs(polls++)));
      const params = [arrayLiteral(pending), channel];
      if (this.filter !== null) params.push(this.filter);
      const [row] = await this.run(query, params);
      if (row?.ready) return 'ready';
      pending = (row?.pending as string[] | undefined) ?? [];
    }
    return 'done';
  }

  /** Which of `xids` are still in progress (nothing else: the watch's cheap check). */
  async stillRunning(xids: string[]): Promise<string[]> {
    const [row] = await this.sql.unsafe(
      `SELECT array(SELECT x::text FROM unnest($1::xid8[]) AS x WHERE pg_xact_status(x) = 'in progress') AS pending`,
      [arrayLiteral(xids)],
      PREPARED,
    );
    return (row?.pending as string[] | undefined) ?? [];
  }
}

/**
 * The pause before the `n`-th check (from 0) of producers that were in progress when a channel went
 * idle: 1 ms three times (a producer caught committing usually ends within a WAL flush or two, and
 * having read the flag before it was set, it sends no NOTIFY: this poll is what finds its job, W2's
 * tail), then doubling up to 50 ms.
 */
export function waitDelayMs(n: number): number {
  return n < 3 ? 1 : Math.min(2 ** (n - 2), 50);
}

/** The most the watch of a slow producer waits between two checks. */
const WATCH_MAX_MS = 5000;

interface Watch {
  xids: string[];
  delay: number;
  timer: NodeJS.Timeout | undefined;
}

interface FlagState {
  /** We believe the channel's wake-up flag is set (producers NOTIFY). */
  set: boolean;
  /** Writes of the flag, in order. */
  chain: Promise<void>;
}

/** What {@link IdleProtocol.goIdle} found: claim now, wake at a time, or nothing to do. */
export type IdleOutcome = { ready: true } | { ready: false; nextRunAt: number | null } | undefined;

/**
 * The listener's side of the wake-up protocol: keeps each channel's idle flag (set when the channel
 * runs out of work, cleared by the first NOTIFY) and decides, when a channel goes idle, whether work
 * is still coming (a producer in progress) or the channel may sleep until the next NOTIFY.
 */
export class IdleProtocol {
  private readonly sql: WakeupSql;
  private readonly flags = new Map<string, FlagState>();
  /** Producers still running after the idle wait, per channel (see `watch`). */
  private readonly watches = new Map<string, Watch>();
  private closed = false;

  constructor(
    db: postgres.Sql,
    schema: string,
    filter: string | null,
    private readonly settings: {
      idleWaitMs: number;
      /** The safety sweep's interval (`false`: none); bounds the watch's backoff. */
      pollIntervalMs: number | false;
      /** The LISTEN session's lock key (the flags are written with it). */
      session: WakeKey;
      /** Ordered channels and their dead-letter choice: their probe looks for a free head. */
      ordered?: ReadonlyMap<string, 'block' | 'skip'>;
      /** The channels that may have packed rows (unordered trigger channels; storage version 5). */
      packed?: ReadonlySet<string>;
      /** Work came in on a channel that sleeps (a watched producer committed): claim it. */
      wake: (name: string) => void;
      onError: (error: unknown, during: string) => void;
    },
  ) {
    this.sql = new WakeupSql(db, schema, filter, settings.session, settings.ordered, settings.packed);
  }

  private flag(name: string): FlagState {
    let state = this.flags.get(name);
    if (!state) {
      state = { set: false, chain: Promise.resolve() };
      this.flags.set(name, state);
    }
    return state;
  }

  /**
   * Runs a write of the channel's wake-up flag after the previous ones: a late "clear" must never
   * overtake the "set" that followed it. A failed write leaves the flag believed clear.
   */
  private writeFlag<T>(name: string, idle: boolean, write: () => Promise<T>): Promise<T> {
    const state = this.flag(name);
    state.set = idle;
    const run = state.chain.then(write);
    state.chain = run.then(
      () => {},
      () => {
        state.set = false;
      },
    );
    return run;
  }

  /** A NOTIFY arrived: the channel is busy again, so producers may stop notifying. */
  hint(name: string): void {
    if (!this.flag(name).set) return;
    this.writeFlag(name, false, () => this.sql.setIdle(name, false)).catch((error) => {
      this.settings.onError(error, `updating the wake-up flag of "${name}"`);
    });
  }

  /** The LISTEN connection (re)connected: the flag may be gone (unlogged table after a crash). */
  reconnected(name: string): void {
    this.flag(name).set = false;
  }

  /**
   * The channel ran out of work: set its flag and probe in one round trip, wait for producers that
   * were in progress (at most `idleWaitMs`) and probe again. `busy()` turning true cuts it short.
   */
  async goIdle(name: string, busy: () => boolean): Promise<IdleOutcome> {
    // This probe covers whatever an earlier watch of the channel waited for.
    this.unwatch(name);
    let probe = this.flag(name).set
      ? (await this.sql.probe([name]))[0]
      : await this.writeFlag(name, true, () => this.sql.setIdleAndProbe(name));
    if (busy()) return undefined;
    if (probe && !probe.ready && probe.inProgress.length > 0) {
      const deadline = Date.now() + this.settings.idleWaitMs;
      const producers = probe.inProgress;
      const waited = await this.sql.waitFor(name, producers, deadline, busy);
      if (busy()) return undefined;
      if (waited === 'ready') return { ready: true };
      [probe] = await this.sql.probe([name]);
      // Slow producers (still running after the wait) may have read the flag before it was set.
      if (waited === 'stopped' && probe && !probe.ready) {
        const running = await this.sql.stillRunning(producers);
        if (running.length > 0 && !busy()) this.watch(name, running);
      }
    }
    if (busy() || !probe) return undefined;
    return probe.ready ? { ready: true } : { ready: false, nextRunAt: probe.nextRunAt };
  }

  /** The safety sweep's statement: one indexed probe for all the given channels. */
  probe(names: string[]): Promise<ProbeResult[]> {
    return this.sql.probe(names);
  }

  /**
   * Watches producers that were still running when the channel went to sleep: checks only their
   * `pg_xact_status`, with backoff (50 ms doubling, at most 5 s or the sweep interval), and probes
   * the channel when one has ended; work found wakes the channel. A later `goIdle` of the channel
   * replaces the watch (its probe covers the same producers).
   */
  private watch(name: string, xids: string[]): void {
    const cap = Math.min(
      WATCH_MAX_MS,
      this.settings.pollIntervalMs === false ? WATCH_MAX_MS : this.settings.pollIntervalMs,
    );
    const w: Watch = { xids, delay: 50, timer: undefined };
    this.watches.set(name, w);
    const tick = async () => {
      if (this.closed || this.watches.get(name) !== w) return;
      try {
        const running = await this.sql.stillRunning(w.xids);
        if (running.length < w.xids.length) {
          const [probe] = await this.sql.probe([name]);
          if (this.watches.get(name) !== w) return;
          if (probe?.ready) {
            this.watches.delete(name);
            this.settings.wake(name);
            return;
          }
        }
        w.xids = running;
      } catch (error) {
        this.settings.onError(error, `watching producers of "${name}"`);
      }
      if (w.xids.length === 0 || this.closed || this.watches.get(name) !== w) {
        if (this.watches.get(name) === w) this.watches.delete(name);
        return;
      }
      w.delay = Math.min(w.delay * 2, cap);
      schedule();
    };
    const schedule = () => {
      w.timer = setTimeout(() => void tick(), w.delay);
      w.timer.unref?.();
    };
    schedule();
  }

  private unwatch(name: string): void {
    const w = this.watches.get(name);
    if (!w) return;
    clearTimeout(w.timer);
    this.watches.delete(name);
  }

  /** Channels with producers being watched (for tests and status). */
  get watching(): string[] {
    return [...this.watches.keys()];
  }

  /** The LISTEN session took a new key (reconnect): the old key's flags no longer count; delete them. */
  releaseKey(key: number): Promise<void> {
    return this.sql.release(key);
  }

  /** Deletes flags of sessions that are gone (a listener starting, or after a reconnect). */
  prune(): Promise<number> {
    return this.sql.prune();
  }

  /** Stops watching; returns after the flags of `key` (this listener's) are deleted. */
  async close(key: number | null): Promise<void> {
    this.closed = true;
    for (const name of [...this.watches.keys()]) this.unwatch(name);
    await Promise.allSettled(this.pendingWrites());
    if (key !== null) await this.sql.release(key);
  }

  /** The flag writes still running (shutdown waits for them). */
  pendingWrites(): Promise<void>[] {
    return [...this.flags.values()].map((f) => f.chain);
  }
}
