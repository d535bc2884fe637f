import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { type Backoff, DEFAULT_MAX_ATTEMPTS, exponentialBackoff } from './backoff.ts';
import type { AnyChannel, CustomChannel, TriggerChannel, TriggerOp } from './channel.ts';
import { isChannel } from './channel.ts';
import {
  type ClaimContext,
  type ClaimOutcome,
  claimBatch,
  notificationsRef,
  type Registration,
  recordFailures,
} from './claim.ts';
import { rowDecoder } from './decode.ts';
import { PgPubSubError } from './errors.ts';
import { type BroadcastEvent, ListenerEvents, type PayloadEvent, type TriggerEvent } from './events.ts';
import { drizzleParts } from './handler-tx.ts';
import { DEFAULT_SCHEMA } from './notifications.ts';
import type { StandardSchemaV1 } from './standard-schema.ts';
import { WakeupSql } from './wakeup.ts';

type AnyDb = PostgresJsDatabase<any>;
/** The transaction type handed to handlers: the same as `db.transaction()` gives. */
export type TxOf<TDb extends AnyDb> = Parameters<Parameters<TDb['transaction']>[0]>[0];

/** The handler type of a channel. */
export type HandlerOf<TChannel, TDb extends AnyDb> =
  TChannel extends TriggerChannel<infer TTable, infer TOp extends TriggerOp>
    ? (event: TriggerEvent<TTable, TOp>, tx: TxOf<TDb>) => unknown
    : TChannel extends CustomChannel<infer TSchema, true>
      ? (event: BroadcastEvent<StandardSchemaV1.InferOutput<TSchema>>, db: TDb) => unknown
      : TChannel extends CustomChannel<infer TSchema, boolean>
        ? (event: PayloadEvent<StandardSchemaV1.InferOutput<TSchema>>, tx: TxOf<TDb>) => unknown
        : never;

/** Retry and timeout settings, per listener or per handler. */
export interface RetryOptions {
  /** Attempts before a notification is dead-lettered (`status = 'failed'`). Default 10. */
  maxAttempts?: number;
  /** Delay before the next attempt. Default: exponential from 1 s, ×2, ±20% jitter, at most 1 h. */
  backoff?: Backoff;
  /** Abort a handler that runs longer (its transaction work is rolled back; counts as a failed attempt). */
  timeoutMs?: number;
}

/** Options of {@link createListener}. */
export interface ListenerOptions extends RetryOptions {
  /** Claim transactions that run at once (each holds one pooled connection). Default 4. */
  concurrency?: number;
  /** Notifications per claim transaction. Default 50. */
  batchSize?: number;
  /** Handle only these channel names (of those registered with `.on`). Default: all. */
  channels?: readonly string[];
  /** Process only notifications whose context contains this JSON (`context @> filter`), e.g. `{ tenant: 't1' }`. */
  filter?: Record<string, unknown>;
  /** Safety sweep interval in ms, or `false` to disable. Default 15000. */
  pollIntervalMs?: number | false;
  /** pg schema of the notifications table. Default `pgpubsub`. */
  schema?: string;
  /** A separate URL for the LISTEN connection, e.g. direct to PostgreSQL when `db` goes through PgBouncer. */
  listenUrl?: string;
  /** How long to wait for in-flight producer transactions when going idle. Default 1000. */
  idleWaitMs?: number;
}

/** Totals returned by {@link Listener.drain}. */
export interface DrainSummary {
  processed: number;
  /** Failed attempts that will be retried later. */
  retried: number;
  /** Notifications that became dead letters. */
  dead: number;
  byChannel: Record<string, { processed: number; retried: number; dead: number }>;
}

interface ChannelState {
  reg: Registration;
  dirty: boolean;
  gen: number;
  inflight: number;
  full: boolean;
  flagSet: boolean;
  /** Claims left to run one notification at a time, after a claim transaction failed. */
  careful: number;
  errors: number;
  lastError: unknown;
  notBefore: number;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
  flagChain: Promise<void>;
}

/** A set of handlers bound to a database. Build with {@link createListener}. */
export class Listener<TDb extends AnyDb = AnyDb> {
  /** Subscribe to `processed`, `failed`, `dead`, `error`, `started`, `stopped`. */
  readonly events = new ListenerEvents();
  private readonly registrations = new Map<string, Registration>();
  private readonly states = new Map<string, ChannelState>();
  private readonly options: Required<Pick<ListenerOptions, 'concurrency' | 'batchSize' | 'idleWaitMs'>> &
    ListenerOptions;
  private readonly sql: postgres.Sql;
  private get table(): string {
    return notificationsRef(this.options.schema ?? DEFAULT_SCHEMA);
  }
  private context: ClaimContext | undefined;
  private wakeup: WakeupSql | undefined;
  private listenSql: postgres.Sql | undefined;
  private unlisteners: (() => Promise<unknown>)[] = [];
  private running = 0;
  private phase: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly hardStop = new AbortController();
  private readonly background = new Set<Promise<unknown>>();
  private settled: (() => void) | undefined;

  constructor(
    private readonly db: TDb,
    options: ListenerOptions = {},
  ) {
    drizzleParts(db);
    const { concurrency = 4, batchSize = 50, idleWaitMs = 1000 } = options;
    for (const [key, value] of Object.entries({ concurrency, batchSize })) {
      if (!Number.isInteger(value) || value < 1) {
        throw new PgPubSubError(
          'INVALID_OPTIONS',
          `createListener: \`${key}\` must be a positive integer, got ${value}.`,
        );
      }
    }
    this.options = { ...options, concurrency, batchSize, idleWaitMs };
    this.sql = (db as any).$client as postgres.Sql;
  }

  /**
   * Changes options before `start()`; the CLI uses it for `--concurrency`, `--batch-size`, `--channels`.
   * Options not given keep their values.
   */
  configure(options: ListenerOptions): this {
    if (this.phase !== 'new')
      throw new PgPubSubError('LISTENER_STATE', 'configure() must be called before start().');
    for (const key of ['concurrency', 'batchSize'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new PgPubSubError(
          'INVALID_OPTIONS',
          `createListener: \`${key}\` must be a positive integer, got ${value}.`,
        );
      }
    }
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    Object.assign(this.options, defined);
    return this;
  }

  /** Registers the handler of a channel. Chainable; typed from the channel. */
  on<TChannel extends AnyChannel>(
    ch: TChannel,
    handler: HandlerOf<TChannel, TDb>,
    options: RetryOptions = {},
  ): this {
    if (!isChannel(ch)) {
      throw new PgPubSubError(
        'INVALID_CHANNEL',
        '.on() takes a channel made by triggerChannel() or channel().',
      );
    }
    if (typeof handler !== 'function') {
      throw new PgPubSubError('INVALID_OPTIONS', `.on("${ch.name}") needs a handler function.`);
    }
    if (this.registrations.has(ch.name)) {
      throw new PgPubSubError(
        'DUPLICATE_CHANNEL',
        `Channel "${ch.name}" already has a handler on this listener. Combine the work into one handler (it runs in one transaction).`,
      );
    }
    if (this.phase !== 'new') throw new PgPubSubError('LISTENER_STATE', 'Register handlers before start().');
    const casing = (this.db as any).dialect.casing;
    this.registrations.set(ch.name, {
      channel: ch,
      handler: handler as Registration['handler'],
      decoder: ch.kind === 'trigger' ? rowDecoder(ch.table, casing) : undefined,
      maxAttempts: options.maxAttempts ?? this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      backoff: options.backoff ?? this.options.backoff ?? exponentialBackoff(),
      timeoutMs: options.timeoutMs ?? this.options.timeoutMs,
    });
    return this;
  }

  /** Names of the channels this listener handles (after the `channels` option). */
  get channels(): string[] {
    return [...this.active().keys()];
  }

  private active(): Map<string, Registration> {
    const wanted = this.options.channels;
    if (!wanted) return this.registrations;
    for (const name of wanted) {
      if (!this.registrations.has(name)) {
        throw new PgPubSubError(
          'UNKNOWN_CHANNEL',
          `Channel "${name}" has no handler in this listener. Known channels: ${[...this.registrations.keys()].join(', ') || '(none)'}.`,
        );
      }
    }
    return new Map([...this.registrations].filter(([name]) => wanted.includes(name)));
  }

  private prepare(): void {
    if (this.context) return;
    const filter = this.options.filter === undefined ? null : JSON.stringify(this.options.filter);
    this.context = {
      sql: this.sql,
      parts: drizzleParts(this.db),
      table: this.table,
      filter,
      hardStop: this.hardStop.signal,
    };
    this.wakeup = new WakeupSql(this.sql, this.options.schema ?? DEFAULT_SCHEMA, filter);
    for (const [name, reg] of this.active()) {
      if (reg.channel.broadcast) continue;
      this.states.set(name, {
        reg,
        dirty: true,
        gen: 0,
        inflight: 0,
        full: false,
        flagSet: false,
        careful: 0,
        errors: 0,
        lastError: undefined,
        notBefore: 0,
        timer: undefined,
        timerAt: 0,
        flagChain: Promise.resolve(),
      });
    }
  }

  private async assertStorage(): Promise<void> {
    let found: unknown;
    try {
      [found] = await this.sql.unsafe('SELECT to_regclass($1) IS NOT NULL AS ok', [this.table]);
    } catch (error) {
      throw new PgPubSubError(
        'DATABASE_UNREACHABLE',
        `Cannot reach the database: ${(error as Error).message}. Check DATABASE_URL and that PostgreSQL is running.`,
        { cause: error },
      );
    }
    if (!(found as { ok: boolean }).ok) {
      throw new PgPubSubError(
        'TABLE_MISSING',
        `The notifications table ${this.table} does not exist. Run \`npx drizzle-pgpubsub generate\` and then \`npx drizzle-kit migrate\`.`,
      );
    }
  }

  /**
   * Starts listening: LISTEN on one dedicated connection, then claims everything pending. After every
   * reconnect of that connection, pending work is swept again, so nothing committed while the
   * listener was down or disconnected waits for more than a moment.
   */
  async start(): Promise<this> {
    if (this.phase !== 'new') throw new PgPubSubError('LISTENER_STATE', 'A listener can be started once.');
    const active = this.active();
    if (active.size === 0) {
      throw new PgPubSubError(
        'LISTENER_STATE',
        'No handlers: register at least one with .on(channel, handler).',
      );
    }
    this.phase = 'starting';
    await this.assertStorage();
    this.prepare();
    this.listenSql = this.options.listenUrl
      ? postgres(this.options.listenUrl, { max: 1, onnotice: () => {} })
      : this.sql;
    for (const [name, reg] of active) {
      const onNotify = (payload: string) => this.onNotify(name, reg, payload);
      const onListen = () => this.onListen(name);
      const { unlisten } = await this.listenSql.listen(name, onNotify, onListen);
      this.unlisteners.push(unlisten);
    }
    this.phase = 'running';
    this.scheduleSweep();
    this.pump();
    this.events.emit('started', { channels: [...active.keys()] });
    return this;
  }

  private onListen(name: string): void {
    const state = this.states.get(name);
    if (!state || this.phase === 'stopping' || this.phase === 'stopped') return;
    // (Re)connected: the flag may be gone (unlogged table after a crash), so set it again when idle.
    state.flagSet = false;
    this.markDirty(state);
  }

  private onNotify(name: string, reg: Registration, payload: string): void {
    // Called synchronously by postgres.js, which would swallow a throw or crash on a rejection.
    try {
      if (reg.channel.broadcast) {
        this.track(this.dispatchBroadcast(reg, payload));
        return;
      }
      const state = this.states.get(name);
      if (!state) return;
      if (state.flagSet) this.setFlag(state, false);
      this.markDirty(state);
    } catch (error) {
      this.events.emit('error', { error, during: `a notification on "${name}"` });
    }
  }

  private async dispatchBroadcast(reg: Registration, text: string): Promise<void> {
    if (reg.channel.kind !== 'custom') return;
    try {
      const result = await reg.channel.schema['~standard'].validate(JSON.parse(text));
      if (result.issues) {
        throw new PgPubSubError(
          'INVALID_PAYLOAD',
          `Broadcast on "${reg.channel.name}" does not match its schema.`,
        );
      }
      await reg.handler(
        { channel: reg.channel.name, payload: result.value, receivedAt: new Date() },
        this.db,
      );
    } catch (error) {
      this.events.emit('error', { error, during: `the broadcast handler of "${reg.channel.name}"` });
    }
  }

  private markDirty(state: ChannelState): void {
    state.dirty = true;
    state.gen++;
    this.pump();
  }

  private track<T>(promise: Promise<T>): void {
    this.background.add(promise);
    promise.finally(() => this.background.delete(promise)).catch(() => {});
  }

  private pump(): void {
    if (this.phase !== 'running') return;
    const now = Date.now();
    let launched = true;
    while (launched && this.running < this.options.concurrency) {
      launched = false;
      for (const state of this.states.values()) {
        if (this.running >= this.options.concurrency) break;
        if (!state.dirty || now < state.notBefore) continue;
        if (state.inflight > 0 && !(state.full && state.careful === 0)) continue;
        this.launch(state);
        launched = true;
      }
    }
  }

  private launch(state: ChannelState): void {
    this.running++;
    state.inflight++;
    const gen = state.gen;
    const limit = state.careful > 0 ? 1 : this.options.batchSize;
    this.track(
      this.claimOnce(state, limit).then((outcome) => {
        this.running--;
        state.inflight--;
        if (outcome && outcome.claimed >= limit) {
          state.full = true;
        } else {
          state.full = false;
          if (outcome && state.gen === gen) state.dirty = false;
        }
        if (!state.dirty && state.inflight === 0) this.goIdle(state);
        this.pump();
        this.maybeSettled();
      }),
    );
  }

  /** Runs one claim; on a failed transaction retries one by one and isolates the culprit. */
  private async claimOnce(state: ChannelState, limit: number): Promise<ClaimOutcome | null> {
    const ctx = this.context!;
    const claimedIds: string[] = [];
    const careful = state.careful > 0;
    try {
      const outcome = await claimBatch(state.reg, ctx, limit, { safe: careful, claimedIds });
      if (careful) state.careful--;
      state.errors = 0;
      state.notBefore = 0;
      this.report(state.reg, outcome);
      return outcome;
    } catch (error) {
      if (this.hardStop.signal.aborted) return null;
      this.events.emit('error', { error, during: `a claim transaction on "${state.reg.channel.name}"` });
      state.errors++;
      state.lastError = error;
      state.notBefore = Date.now() + Math.min(30_000, 50 * 2 ** Math.min(state.errors, 10));
      this.scheduleAt(state, state.notBefore);
      if (!careful) {
        state.careful = this.options.batchSize;
      } else if (claimedIds.length === 1) {
        // This one notification breaks its whole transaction (e.g. a deferred constraint at COMMIT).
        return this.recordBroken(state, claimedIds[0]!, error);
      }
      return null;
    }
  }

  private async recordBroken(state: ChannelState, id: string, error: unknown): Promise<ClaimOutcome | null> {
    const [row] = await this.sql
      .unsafe(`SELECT "attempts" FROM ${this.table} WHERE "id" = $1`, [id])
      .catch(() => []);
    if (!row) return null;
    const attempt = (row.attempts as number) + 1;
    const dead = attempt >= state.reg.maxAttempts;
    const delayMs = dead ? 0 : state.reg.backoff(attempt);
    try {
      await recordFailures(this.sql, this.table, [{ id, error, delayMs, dead }]);
      state.careful--;
      state.errors = 0;
      state.notBefore = 0;
      const outcome: ClaimOutcome = {
        claimed: 1,
        processed: [],
        failed: [{ id, attempt, error, dead, retryAt: dead ? null : new Date(Date.now() + delayMs) }],
      };
      this.report(state.reg, outcome);
      return outcome;
    } catch (recordError) {
      this.events.emit('error', { error: recordError, during: 'recording a failed attempt' });
      return null;
    }
  }

  private report(reg: Registration, outcome: ClaimOutcome): void {
    const channel = reg.channel.name;
    for (const p of outcome.processed) this.events.emit('processed', { channel, ...p });
    let earliest = Number.POSITIVE_INFINITY;
    for (const f of outcome.failed) {
      this.events.emit('failed', {
        channel,
        id: f.id,
        attempt: f.attempt,
        error: f.error,
        retryAt: f.retryAt,
      });
      if (f.dead) this.events.emit('dead', { channel, id: f.id, attempts: f.attempt, error: f.error });
      if (f.retryAt) earliest = Math.min(earliest, f.retryAt.getTime());
    }
    const state = this.states.get(channel);
    if (state && Number.isFinite(earliest)) this.scheduleAt(state, earliest);
  }

  /** Wakes a channel at `at` (retries, backoff after errors), keeping only the earliest timer. */
  private scheduleAt(state: ChannelState, at: number): void {
    if (this.phase !== 'running' && this.phase !== 'starting') return;
    if (state.timer && state.timerAt <= at) return;
    clearTimeout(state.timer);
    state.timerAt = at;
    state.timer = setTimeout(
      () => {
        state.timer = undefined;
        this.markDirty(state);
      },
      Math.max(0, at - Date.now()) + 5,
    );
    state.timer.unref?.();
  }

  private setFlag(state: ChannelState, idle: boolean): Promise<void> {
    state.flagSet = idle;
    const name = state.reg.channel.name;
    state.flagChain = state.flagChain
      .then(() => this.wakeup!.setIdle(name, idle))
      .catch((error) => {
        state.flagSet = false;
        this.events.emit('error', { error, during: `updating the wake-up flag of "${name}"` });
      });
    return state.flagChain;
  }

  private goIdle(state: ChannelState): void {
    if (this.phase !== 'running') return;
    const gen = state.gen;
    const busy = () => state.gen !== gen || this.phase !== 'running';
    this.track(
      (async () => {
        if (!state.flagSet) await this.setFlag(state, true);
        if (busy()) return;
        const name = state.reg.channel.name;
        let [probe] = await this.wakeup!.probe([name]);
        if (probe && !probe.ready && probe.inProgress.length > 0) {
          await this.wakeup!.waitFor(probe.inProgress, Date.now() + this.options.idleWaitMs, busy);
          if (busy()) return;
          [probe] = await this.wakeup!.probe([name]);
        }
        if (busy() || !probe) return;
        if (probe.ready) this.markDirty(state);
        else if (probe.nextRunAt !== null) this.scheduleAt(state, probe.nextRunAt);
      })().catch((error) => {
        this.events.emit('error', { error, during: `going idle on "${state.reg.channel.name}"` });
        this.scheduleAt(state, Date.now() + 1000);
      }),
    );
  }

  private scheduleSweep(): void {
    const interval = this.options.pollIntervalMs ?? 15_000;
    if (interval === false || interval <= 0) return;
    this.sweepTimer = setInterval(() => this.track(this.sweep()), interval);
    this.sweepTimer.unref?.();
  }

  /** The safety sweep: one indexed statement for all idle channels. */
  private async sweep(): Promise<void> {
    const idle = [...this.states.values()].filter((s) => !s.dirty && s.inflight === 0);
    if (idle.length === 0 || this.phase !== 'running') return;
    try {
      const probes = await this.wakeup!.probe(idle.map((s) => s.reg.channel.name));
      for (const probe of probes) {
        const state = this.states.get(probe.channel)!;
        if (probe.ready) this.markDirty(state);
        else if (probe.nextRunAt !== null) this.scheduleAt(state, probe.nextRunAt);
      }
    } catch (error) {
      this.events.emit('error', { error, during: 'the safety sweep' });
    }
  }

  private maybeSettled(): void {
    if (this.running === 0) this.settled?.();
  }

  /**
   * Stops claiming, lets in-flight handlers finish within `timeoutMs` (default 30 s), then aborts them
   * through their `signal`: their transactions roll back, so their notifications stay pending for the
   * next listener. Closes the LISTEN connection it opened; the database client stays yours to close.
   */
  async stop({ timeoutMs = 30_000 }: { timeoutMs?: number } = {}): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'stopping') return;
    this.phase = 'stopping';
    clearInterval(this.sweepTimer);
    for (const state of this.states.values()) clearTimeout(state.timer);
    // UNLISTEN waits for the connection; do not let a dead database hold up shutdown.
    await Promise.race([
      Promise.allSettled(this.unlisteners.map((u) => u())),
      new Promise((resolve) => setTimeout(resolve, 2000).unref()),
    ]);
    let aborted = 0;
    if (this.running > 0) {
      const settled = new Promise<void>((resolve) => {
        this.settled = resolve;
      });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      if ((await Promise.race([settled, timedOut])) === 'timeout') {
        aborted = this.running;
        this.hardStop.abort();
        await settled;
      }
      clearTimeout(timer);
    }
    await Promise.allSettled([...this.background]);
    await Promise.allSettled([...this.states.values()].map((s) => s.flagChain));
    if (this.listenSql && this.listenSql !== this.sql) await this.listenSql.end({ timeout: 5 });
    this.phase = 'stopped';
    this.events.emit('stopped', { aborted });
  }

  /**
   * Processes everything pending now, without LISTEN, and returns what happened. Meant for tests:
   * `await listener.drain()` after the code under test commits, then assert on the effects.
   * Notifications scheduled for later (retries) are left alone.
   */
  async drain(): Promise<DrainSummary> {
    if (this.phase === 'running' || this.phase === 'starting') {
      throw new PgPubSubError('LISTENER_STATE', 'drain() is for a listener that is not started.');
    }
    await this.assertStorage();
    this.prepare();
    const summary: DrainSummary = { processed: 0, retried: 0, dead: 0, byChannel: {} };
    let progress = true;
    while (progress) {
      progress = false;
      for (const state of this.states.values()) {
        const limit = state.careful > 0 ? 1 : this.options.batchSize;
        const outcome = await this.claimOnce(state, limit);
        if (!outcome) {
          if (state.errors > 3) throw state.lastError;
          progress = true;
          state.notBefore = 0;
          continue;
        }
        const entry = (summary.byChannel[state.reg.channel.name] ??= { processed: 0, retried: 0, dead: 0 });
        entry.processed += outcome.processed.length;
        for (const f of outcome.failed) f.dead ? entry.dead++ : entry.retried++;
        if (outcome.claimed > 0) progress = true;
      }
    }
    for (const entry of Object.values(summary.byChannel)) {
      summary.processed += entry.processed;
      summary.retried += entry.retried;
      summary.dead += entry.dead;
    }
    return summary;
  }
}

/**
 * Creates a listener for a Drizzle database on postgres.js. Register handlers with `.on()`, then
 * `start()`. Handlers of durable channels run inside the transaction that claimed the notification
 * and deletes it: their writes through `tx` commit exactly once, together with the deletion.
 *
 * @example
 * const listener = createListener(db, { concurrency: 8 })
 *   .on(authorEvents, async (event, tx) => { if (event.op === 'insert') await tx.insert(posts).values(…); })
 *   .on(emailRequested, async ({ payload }) => sendMail(payload));
 * await listener.start();
 */
export function createListener<TDb extends AnyDb>(db: TDb, options?: ListenerOptions): Listener<TDb> {
  return new Listener(db, options);
}

/** Processes everything pending now with `listener`'s handlers and returns what happened (for tests). */
export function drain(listener: Listener<any>): Promise<DrainSummary> {
  return listener.drain();
}
