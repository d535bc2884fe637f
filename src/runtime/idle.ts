import type postgres from 'postgres';
import { arrayLiteral } from '../identifiers.ts';
import { notificationsRef, pendingAndDue, pendingScheduled, wakeupsRef } from '../storage/sql-names.ts';

const PREPARED = { prepare: true } as const;

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
 * The wake-up protocol. Producers NOTIFY only while a channel's `wakeups.idle` flag is set, so busy
 * listeners cost the write path nothing. A listener that runs out of work sets the flag, then probes:
 * a producer that read the flag just before it was set may still commit without notifying, but it
 * is then in the probe snapshot's in-progress list, so the listener waits for that list to finish
 * and probes again before it sleeps. A wait cut short by a long unrelated transaction leaves at
 * most the safety sweep's delay, never a lost notification. This needs the producer to read the
 * flag after it has a transaction id and in a snapshot taken after that: true in READ COMMITTED
 * (the trigger writes its row first, then reads the flag in a new statement); REPEATABLE READ and
 * SERIALIZABLE producers always NOTIFY (see `wakeCondition`).
 */
class WakeupSql {
  private readonly wakeups: string;
  private readonly notifications: string;

  constructor(
    private readonly sql: postgres.Sql,
    schema: string,
    private readonly filter: string | null,
  ) {
    this.wakeups = wakeupsRef(schema);
    this.notifications = notificationsRef(schema);
  }

  private setIdleSql(): string {
    return `INSERT INTO ${this.wakeups} AS w ("channel", "idle") VALUES ($1, $2)
       ON CONFLICT ("channel") DO UPDATE SET "idle" = EXCLUDED."idle" WHERE w."idle" IS DISTINCT FROM EXCLUDED."idle"`;
  }

  /** Sets or clears the idle flag of a channel. */
  async setIdle(channel: string, idle: boolean): Promise<void> {
    await this.sql.unsafe(this.setIdleSql(), [channel, idle], PREPARED);
  }

  /**
   * Sets the idle flag, then probes, in one round trip: both statements are pipelined on one
   * connection, each in its own transaction, so the probe's snapshot is taken after the flag committed.
   */
  async setIdleAndProbe(channel: string): Promise<ProbeResult | undefined> {
    const conn = await this.sql.reserve();
    try {
      const flag = conn.unsafe(this.setIdleSql(), [channel, true], PREPARED).execute();
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
    return `(SELECT n."id" FROM ${this.notifications} n WHERE n."channel" = ${channel} AND ${pendingAndDue('n')}${filter}
   ORDER BY n."run_at", n."id" LIMIT 1 FOR UPDATE SKIP LOCKED) IS NOT NULL`;
  }

  /** One statement that checks every given channel for ready and scheduled work. */
  async probe(
    channels: string[],
    conn: postgres.Sql | postgres.ReservedSql = this.sql,
  ): Promise<ProbeResult[]> {
    const filter = this.filter === null ? '' : ` AND n."context" @> $2::text::jsonb`;
    const rows = await conn.unsafe(
      `SELECT c.name AS channel,
  ${this.readySql('c.name', '$2')} AS ready,
  (extract(epoch FROM (SELECT min(n."run_at") FROM ${this.notifications} n
   WHERE n."channel" = c.name AND ${pendingScheduled('n')}${filter}) - now()) * 1000)::float8 AS next_run_in,
  array(SELECT pg_snapshot_xip(pg_current_snapshot())::text) AS in_progress
FROM jsonb_array_elements_text($1::text::jsonb) AS c(name)`,
      (this.filter === null ? [JSON.stringify(channels)] : [JSON.stringify(channels), this.filter]) as any[],
      PREPARED,
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
    let delay = 1;
    while (pending.length > 0) {
      if (cancelled() || Date.now() >= deadline) return 'stopped';
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 50);
      const params = [arrayLiteral(pending), channel];
      if (this.filter !== null) params.push(this.filter);
      const [row] = await this.sql.unsafe(query, params, PREPARED);
      if (row?.ready) return 'ready';
      pending = (row?.pending as string[] | undefined) ?? [];
    }
    return 'done';
  }
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

  constructor(
    db: postgres.Sql,
    schema: string,
    filter: string | null,
    private readonly idleWaitMs: number,
    private readonly onError: (error: unknown, during: string) => void,
  ) {
    this.sql = new WakeupSql(db, schema, filter);
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
      this.onError(error, `updating the wake-up flag of "${name}"`);
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
    let probe = this.flag(name).set
      ? (await this.sql.probe([name]))[0]
      : await this.writeFlag(name, true, () => this.sql.setIdleAndProbe(name));
    if (busy()) return undefined;
    if (probe && !probe.ready && probe.inProgress.length > 0) {
      const waited = await this.sql.waitFor(name, probe.inProgress, Date.now() + this.idleWaitMs, busy);
      if (busy()) return undefined;
      if (waited === 'ready') return { ready: true };
      [probe] = await this.sql.probe([name]);
    }
    if (busy() || !probe) return undefined;
    return probe.ready ? { ready: true } : { ready: false, nextRunAt: probe.nextRunAt };
  }

  /** The safety sweep's statement: one indexed probe for all the given channels. */
  probe(names: string[]): Promise<ProbeResult[]> {
    return this.sql.probe(names);
  }

  /** The flag writes still running (shutdown waits for them). */
  pendingWrites(): Promise<void>[] {
    return [...this.flags.values()].map((f) => f.chain);
  }
}
