/**
 * Why this file is over 300 lines: the Listener facade is one class (registry, options and their
 * checks against the pool, start/stop, LISTEN and broadcast dispatch); its types are in listener-options.ts, claiming in
 * scheduler.ts and claim.ts.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type postgres from 'postgres';
import type { AnyChannel } from '../channel.ts';
import { isChannel } from '../channel.ts';
import { parseDuration } from '../duration.ts';
import { PgPubSubError } from '../errors.ts';
import { ListenerEvents } from '../events.ts';
import { storableString } from '../notify.ts';
import { isSchedule } from '../schedule.ts';
import { DEFAULT_SCHEMA } from '../storage/notifications.ts';
import { orderModeOf } from '../storage/ordered.ts';
import { expandFunctionRef, notificationsRef, packedRef } from '../storage/sql-names.ts';
import { type ListenerTelemetry, listenerTelemetry } from '../telemetry/listener-telemetry.ts';
import { logListenerEvents } from '../telemetry/logger.ts';
import { MAX_TIMER_MS, waitAtMost } from '../timeouts.ts';
import { DEFAULT_MAX_ATTEMPTS, exponentialBackoff } from './backoff.ts';
import type { Registration } from './claim-types.ts';
import { assertNotificationsTable } from './connect.ts';
import { rowDecoder } from './decode.ts';
import {
  loadPg,
  type PgDriver,
  type PgPool,
  pgPoolMax,
  pgSessionDriver,
  pgSql,
} from './drivers/node-postgres.ts';
import { loadPostgresJs, type PostgresJsDriver, postgresSessionDriver } from './drivers/postgres-js.ts';
import type { DriverKind } from './drizzle-adapter.ts';
import { assertSupportedDb, type DrizzleParts, drizzleParts } from './handler-tx.ts';
import { IdleProtocol } from './idle.ts';
import { ListenSession, type SessionDriver } from './listen-session.ts';
import type {
  AnyDb,
  BatchHandlerOf,
  BatchHandlerOptions,
  HandlerOf,
  HandlerOptions,
  LeaseHandlerOf,
  LeaseHandlerOptions,
  ListenerOptions,
  RetryOptions,
} from './listener-options.ts';
import { checkDurations } from './option-checks.ts';
import { parseRate, RateLimiter } from './rate-limit.ts';
import { ScheduleRunner } from './schedule-runner.ts';
import { type DrainSummary, Scheduler } from './scheduler.ts';

export type { HandlerOf, ListenerOptions, RetryOptions, TxOf } from './listener-options.ts';
export type { DrainSummary } from './scheduler.ts';

interface HandlerEntry {
  channel: AnyChannel;
  handler: Registration['handler'];
  options: RetryOptions;
  concurrency: number | undefined;
  rate: { limit: number; perMs: number } | undefined;
  leaseMs: number | undefined;
  batch: { size: number | undefined; maxWaitMs: number } | undefined;
}

/** A set of handlers bound to a database. Build with {@link createListener}. */
export class Listener<TDb extends AnyDb = AnyDb> {
  /** Subscribe to `processed`, `failed`, `dead`, `error`, `started`, `stopped`. */
  readonly events = new ListenerEvents();
  private readonly handlers = new Map<string, HandlerEntry>();
  private readonly options: ListenerOptions = {};
  /** The database client in postgres.js's shape (node-postgres: set by `ready()`). */
  private sql!: postgres.Sql;
  private readonly driver: DriverKind;
  private pg: PgDriver | undefined;
  private postgresJs: PostgresJsDriver | undefined;
  private scheduler: Scheduler | undefined;
  private idle: IdleProtocol | undefined;
  private session: ListenSession | undefined;
  private schedules: ScheduleRunner | undefined;
  /** The LISTEN session's key as far as the idle protocol is concerned (none for drain()). */
  private readonly wakeKey = { get: () => this.session?.key ?? null };
  private phase: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private readonly hardStop = new AbortController();
  private readonly broadcasts = new Set<Promise<void>>();
  private starting: Promise<void> | undefined;
  private parts: DrizzleParts | undefined;
  /** Spans and metrics; resolved once, in prepare() (undefined: none to do). */
  private telemetry: ListenerTelemetry | undefined;
  private unlog: (() => void) | undefined;
  /** Republishes the presence (last claim) on the LISTEN session, at most every {@link PRESENCE_MS}. */
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();

  constructor(
    /** The Drizzle database the listener was created with (the CLI closes its `$client` on exit). */
    readonly db: TDb,
    options: ListenerOptions = {},
  ) {
    this.driver = assertSupportedDb(db);
    if (this.driver === 'postgres-js') this.sql = (db as any).$client as postgres.Sql;
    // Every running handler (lease handlers, rate waits) watches the hard stop: no listener cap.
    setMaxListeners(0, this.hardStop.signal);
    this.configure(options);
  }

  private get table(): string {
    return notificationsRef(this.options.schema ?? DEFAULT_SCHEMA);
  }

  /**
   * Changes options before `start()`; the CLI uses it for `--concurrency`, `--batch-size`, `--channels`.
   * Options not given keep their values.
   */
  configure(options: ListenerOptions): this {
    if (this.phase !== 'new' || this.scheduler) {
      throw new PgPubSubError('LISTENER_STATE', 'configure() must be called before start() or drain().');
    }
    for (const key of ['concurrency', 'batchSize', 'batchBytes'] as const) {
      const value = options[key];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new PgPubSubError(
          'INVALID_OPTIONS',
          `createListener: \`${key}\` must be a positive integer, got ${value}.`,
        );
      }
    }
    checkDurations(options, 'createListener');
    if (options.filter !== undefined) filterJson(options.filter);
    Object.assign(
      this.options,
      Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    );
    return this;
  }

  /**
   * Registers the handler of a channel. Chainable; typed from the channel. By default the handler
   * runs in the claim transaction and gets `tx`; with `{ lease }` it runs outside any transaction
   * under a renewed lease and gets `db` (docs/jobs.md). `concurrency` and `rate` limit this channel's
   * handlers in this process.
   */
  on<TChannel extends AnyChannel>(
    ch: TChannel,
    handler: LeaseHandlerOf<TChannel, TDb>,
    options: LeaseHandlerOptions,
  ): this;
  on<TChannel extends AnyChannel>(
    ch: TChannel,
    handler: HandlerOf<TChannel, TDb>,
    options?: HandlerOptions,
  ): this;
  on(ch: AnyChannel, handler: unknown, options: HandlerOptions | LeaseHandlerOptions = {}): this {
    const where = `.on("${isChannel(ch) ? ch.name : '?'}")`;
    this.checkRegistration(ch, handler, options, where);
    const leaseMs = options.lease === undefined ? undefined : parseDuration(options.lease);
    if (options.lease !== undefined && (leaseMs === undefined || leaseMs > MAX_TIMER_MS)) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`lease\` must be a positive number of milliseconds up to ${MAX_TIMER_MS} (~24.8 days) or a string like '30s', '5m', '1h'; got ${JSON.stringify(options.lease)}.`,
      );
    }
    if (leaseMs !== undefined && ch.broadcast) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`lease\` is for durable channels; a broadcast handler holds no transaction anyway.`,
      );
    }
    this.handlers.set(ch.name, {
      channel: ch,
      handler: handler as Registration['handler'],
      options,
      concurrency: options.concurrency,
      rate: options.rate === undefined ? undefined : parseRate(options.rate, ch.name),
      leaseMs,
      batch: undefined,
    });
    return this;
  }

  /**
   * Registers a batch handler: one call, in one claim transaction, for up to `size` events of the
   * channel (`(events, tx) => …`). Return `{ failed: [{ event, error }] }` to fail some events (they
   * are retried or dead-lettered; the others are deleted); a thrown error rolls back the call's
   * writes and fails every event of the call.
   */
  onBatch<TChannel extends AnyChannel>(
    ch: TChannel,
    handler: BatchHandlerOf<TChannel, TDb>,
    options: BatchHandlerOptions = {},
  ): this {
    const where = `.onBatch("${isChannel(ch) ? ch.name : '?'}")`;
    this.checkRegistration(ch, handler, options, where);
    if (ch.broadcast) {
      throw new PgPubSubError('INVALID_OPTIONS', `${where}: batch handlers are for durable channels.`);
    }
    const { size, maxWaitMs = 0 } = options;
    if (size !== undefined && (!Number.isInteger(size) || size < 1)) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`size\` must be a positive integer, got ${size}.`,
      );
    }
    if (!Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`maxWaitMs\` must be a number of milliseconds >= 0, got ${maxWaitMs}.`,
      );
    }
    this.handlers.set(ch.name, {
      channel: ch,
      handler: handler as Registration['handler'],
      options,
      concurrency: options.concurrency,
      rate: undefined,
      leaseMs: undefined,
      batch: { size, maxWaitMs },
    });
    return this;
  }

  private checkRegistration(
    ch: AnyChannel,
    handler: unknown,
    options: RetryOptions & { concurrency?: number | undefined },
    where: string,
  ): void {
    if (!isChannel(ch)) {
      throw new PgPubSubError(
        'INVALID_CHANNEL',
        `${where.split('(')[0]}() takes a channel made by triggerChannel() or channel().`,
      );
    }
    if (typeof handler !== 'function') {
      throw new PgPubSubError('INVALID_OPTIONS', `${where} needs a handler function.`);
    }
    if (options.backoff !== undefined && typeof options.backoff !== 'function') {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`backoff\` must be a function (failedAttempt) => milliseconds, e.g. exponentialBackoff().`,
      );
    }
    checkDurations(options, where);
    const { concurrency } = options;
    if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`concurrency\` must be a positive integer, got ${concurrency}.`,
      );
    }
    if (this.handlers.has(ch.name)) {
      throw new PgPubSubError(
        'DUPLICATE_CHANNEL',
        `Channel "${ch.name}" already has a handler on this listener. Combine the work into one handler (it runs in one transaction).`,
      );
    }
    if (this.phase !== 'new' || this.scheduler) {
      throw new PgPubSubError('LISTENER_STATE', 'Register handlers before start() or drain().');
    }
  }

  /** The options in force, defaults filled in (read-only view, e.g. for logging). */
  get settings(): Readonly<
    ListenerOptions & { concurrency: number; batchSize: number; pollIntervalMs: number | false }
  > {
    return { ...this.options, ...this.resolved() };
  }

  private resolved() {
    return {
      // The default fits the pool (one connection stays free for the idle protocol and for handlers
      // that query through `db`); an explicit concurrency is checked at start() instead.
      concurrency: this.options.concurrency ?? Math.max(1, Math.min(4, this.poolMax() - 1)),
      batchSize: this.options.batchSize ?? 100,
      idleWaitMs: this.options.idleWaitMs ?? 1000,
      pollIntervalMs: this.options.pollIntervalMs ?? 15_000,
    };
  }

  /** Names of the channels this listener handles (after the `channels` option). */
  get channels(): string[] {
    return this.active().map((h) => h.channel.name);
  }

  private active(): HandlerEntry[] {
    const wanted = this.options.channels;
    if (!wanted) return [...this.handlers.values()];
    for (const name of wanted) {
      if (!this.handlers.has(name)) {
        throw new PgPubSubError(
          'UNKNOWN_CHANNEL',
          `Channel "${name}" has no handler in this listener. Known channels: ${[...this.handlers.keys()].join(', ') || '(none)'}.`,
        );
      }
    }
    return [...this.handlers.values()].filter((h) => wanted.includes(h.channel.name));
  }

  /** Resolves registrations with the final options (configure() may come after on()). */
  private registration(entry: HandlerEntry): Registration {
    const { channel: ch, handler, options } = entry;
    // Column names exactly as db.select() resolves them (the database's casing, drizzle-adapter.ts).
    const codecs = this.drizzleParts().columns;
    return {
      telemetry: this.telemetry,
      channel: ch,
      handler,
      decoder: ch.kind === 'trigger' ? rowDecoder(ch.table, codecs) : undefined,
      maxAttempts: options.maxAttempts ?? this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      backoff: options.backoff ?? this.options.backoff ?? exponentialBackoff(),
      timeoutMs: options.timeoutMs ?? this.options.timeoutMs,
      concurrency: entry.concurrency,
      rate: entry.rate ? new RateLimiter(entry.rate.limit, entry.rate.perMs) : undefined,
      leaseMs: entry.leaseMs,
      batch: entry.batch && {
        size: entry.batch.size ?? this.resolved().batchSize,
        maxWaitMs: entry.batch.maxWaitMs,
      },
    };
  }

  /** What handler transactions and decoders need from the Drizzle database (after configure()). */
  private drizzleParts(): DrizzleParts {
    this.parts ??= drizzleParts(this.db, this.options.drizzle, { pg: this.pg, postgresJs: this.postgresJs });
    return this.parts;
  }

  /**
   * Loads the driver's part of the runtime, imported only then: on postgres.js, `postgres` and
   * `drizzle-orm/postgres-js`; on node-postgres, `pg` and `drizzle-orm/node-postgres`, and the pool
   * in the runtime's shape. (An app installs only the driver it uses.)
   */
  private async ready(): Promise<void> {
    if (this.driver === 'postgres-js') {
      this.postgresJs ??= await loadPostgresJs();
      return;
    }
    if (this.pg) return;
    const pg = await loadPg();
    const pool = (this.db as any).$client as PgPool;
    this.sql = pgSql(pool, pg.pg);
    this.pg = pg;
    // An idle pooled connection that fails emits 'error' on the pool: unhandled, it ends the process.
    if (pool.listenerCount('error') === 0) {
      pool.on('error', (error: unknown) =>
        this.events.emit('error', { error, during: 'an idle connection of the node-postgres pool' }),
      );
    }
  }

  /** Opens the LISTEN session's connections on the database's driver. */
  private sessionDriver(): SessionDriver {
    if (this.driver === 'node-postgres') {
      return pgSessionDriver((this.db as any).$client as PgPool, this.pg!.pg, this.options.listenUrl);
    }
    return postgresSessionDriver(this.sql, this.postgresJs!, this.options.listenUrl);
  }

  /** Whether some durable channel this listener handles is ordered (it needs storage version 4). */
  private hasOrdered(): boolean {
    return this.active().some((h) => !h.channel.broadcast && orderModeOf(h.channel) !== null);
  }

  /** Whether some channel this listener handles is an unordered trigger channel (packed rows: storage version 5). */
  private hasPacked(): boolean {
    return this.active().some((h) => h.channel.kind === 'trigger' && orderModeOf(h.channel) === null);
  }

  private prepare(): Scheduler {
    if (this.scheduler) return this.scheduler;
    const filter = this.options.filter === undefined ? null : filterJson(this.options.filter);
    const ctx = {
      sql: this.sql,
      parts: this.drizzleParts(),
      table: this.table,
      filter,
      batchBytes: this.options.batchBytes,
      hardStop: this.hardStop.signal,
      db: this.db,
      expand: expandFunctionRef(this.options.schema ?? DEFAULT_SCHEMA),
    };
    const durable = this.active().filter((h) => !h.channel.broadcast);
    this.telemetry = listenerTelemetry(this.options);
    if (this.options.logger && !this.unlog) {
      const { concurrency, batchSize } = this.resolved();
      this.unlog = logListenerEvents(this.events, this.options.logger, () => ({ concurrency, batchSize }));
    }
    const wakeKey = this.wakeKey;
    this.idle = new IdleProtocol(this.sql, this.options.schema ?? DEFAULT_SCHEMA, filter, {
      idleWaitMs: this.resolved().idleWaitMs,
      pollIntervalMs: this.resolved().pollIntervalMs,
      session: {
        get key() {
          return wakeKey.get();
        },
      },
      ordered: new Map(
        durable.flatMap((h) => {
          const mode = orderModeOf(h.channel);
          return mode === null ? [] : [[h.channel.name, mode] as const];
        }),
      ),
      packed: new Set(
        durable
          .filter((h) => h.channel.kind === 'trigger' && orderModeOf(h.channel) === null)
          .map((h) => h.channel.name),
      ),
      wake: (name) => this.phase === 'running' && this.scheduler?.hint(name),
      onError: (error, during) => this.events.emit('error', { error, during }),
    });
    this.scheduler = new Scheduler(
      this.sql,
      ctx,
      this.idle,
      this.resolved(),
      this.events,
      durable.map((h) => this.registration(h)),
    );
    return this.scheduler;
  }

  /**
   * Starts listening: LISTEN on one dedicated connection, then claims everything pending. After every
   * reconnect of that connection, pending work is swept again, so nothing committed while the
   * listener was down or disconnected waits for more than a moment.
   */
  async start(): Promise<this> {
    if (this.phase !== 'new' || this.scheduler) {
      throw new PgPubSubError('LISTENER_STATE', 'A listener can be started once, and not after drain().');
    }
    const active = this.active();
    if (active.length === 0) {
      throw new PgPubSubError(
        'LISTENER_STATE',
        'No handlers: register at least one with .on(channel, handler).',
      );
    }
    this.assertPoolFits();
    this.phase = 'starting';
    this.starting = this.listen(active);
    try {
      await this.starting;
    } catch (error) {
      // A failed start leaves nothing behind and can be tried again.
      await this.session?.close();
      this.session = undefined;
      this.scheduler = undefined;
      this.idle = undefined;
      this.schedules = undefined;
      if (this.phase === 'starting') this.phase = 'new';
      throw error;
    }
    if (this.phase !== 'starting') return this; // stop() was called meanwhile and cleans up
    this.phase = 'running';
    this.scheduler!.start();
    this.schedules?.start();
    this.presenceTimer = presenceHeartbeat(this.scheduler!, this.session!);
    this.events.emit('started', { channels: active.map((h) => h.channel.name) });
    return this;
  }

  /** The database client's pool size (postgres.js `options.max`, pg `Pool` `options.max`), or Infinity when unknown. */
  private poolMax(): number {
    if (this.driver === 'node-postgres') return pgPoolMax((this.db as any).$client as PgPool);
    const max = (this.sql as { options?: { max?: unknown } }).options?.max;
    return typeof max === 'number' && max >= 1 ? max : Number.POSITIVE_INFINITY;
  }

  /**
   * Refuses a pool too small for the concurrency (issue 14, item 5). Each running claim reserves one
   * connection of the pool for its whole transaction (up to `concurrency` at once), and the idle
   * protocol needs one more for its flag writes and probes; LISTEN uses a connection of its own
   * outside the pool. With fewer, a handler that queries through the application's `db` instead of
   * `tx` waits for a connection that only a finished claim could free: a silent deadlock.
   */
  private assertPoolFits(): void {
    const max = this.poolMax();
    const { concurrency } = this.resolved();
    const needed = poolConnectionsNeeded(concurrency);
    if (max >= needed) return;
    throw new PgPubSubError(
      'POOL_TOO_SMALL',
      `The database client's pool has max ${max} connections, but a listener with concurrency ${concurrency} needs ${needed} (one per concurrent claim, plus one for the wake-up flag and probes). Create the client with postgres(url, { max: ${needed} }) or more (more still if handlers query through \`db\` instead of \`tx\`), or lower \`concurrency\` to ${Math.max(1, max - 1)}.`,
    );
  }

  /** The runner of the schedules among `active` (one timer per schedule, schedule-runner.ts). */
  private scheduleRunner(active: HandlerEntry[]): ScheduleRunner {
    this.schedules ??= new ScheduleRunner(
      this.sql,
      this.options.schema ?? DEFAULT_SCHEMA,
      active.filter((h) => isSchedule(h.channel)).map((h) => h.channel.name),
      (error, during) => this.events.emit('error', { error, during }),
    );
    return this.schedules;
  }

  /**
   * Opens the listener's own LISTEN session (listen-session.ts) on every channel, then deletes the
   * wake-up flags of sessions that are gone.
   */
  private async listen(active: HandlerEntry[]): Promise<void> {
    const schema = this.options.schema ?? DEFAULT_SCHEMA;
    await this.ready();
    await assertNotificationsTable(this.sql, schema, this.hasOrdered(), this.hasPacked());
    await this.scheduleRunner(active).check();
    const scheduler = this.prepare();
    const entries = new Map(active.map((entry) => [entry.channel.name, entry]));
    const session = new ListenSession(this.sessionDriver(), [...entries.keys()], schema, {
      onNotify: (channel, payload) => {
        const entry = entries.get(channel);
        if (entry) this.onNotify(entry, payload);
      },
      onReconnect: (oldKey) => this.reconnected(scheduler, oldKey),
      onError: (error, during) => this.events.emit('error', { error, during }),
      presence: () => ({
        host: hostname(),
        pid: process.pid,
        channels: [...entries.keys()],
        startedAt: this.startedAt,
        lastClaimAt: scheduler.lastClaimAt,
        handled: scheduler.handled,
      }),
    });
    this.session = session;
    await session.open();
    await this.idle!.prune();
    this.telemetry?.start(
      this.sql,
      this.table,
      active.filter((h) => !h.channel.broadcast).map((h) => h.channel.name),
      this.hasPacked() ? packedRef(this.options.schema ?? DEFAULT_SCHEMA) : undefined,
    );
  }

  /**
   * The LISTEN session was replaced (it LISTENs again, with a new key): the old key's flags no longer
   * count and are deleted; every channel is swept and sets its flag again when it runs dry.
   */
  private reconnected(scheduler: Scheduler, oldKey: number | null): void {
    if (this.phase !== 'running') return;
    for (const name of this.channels) scheduler.reconnected(name);
    const idle = this.idle!;
    (oldKey === null ? idle.prune() : idle.releaseKey(oldKey).then(() => idle.prune())).catch((error) =>
      this.events.emit('error', { error, during: 'deleting the wake-up flags of the old LISTEN session' }),
    );
  }

  private onNotify(entry: HandlerEntry, payload: string): void {
    // Called synchronously by postgres.js, which would swallow a throw or crash on a rejection.
    try {
      if (this.phase !== 'running') return;
      if (!entry.channel.broadcast) {
        // `at:<ms>`: a delayed notification due in <ms>, earlier than any the channel had (notify_many).
        const delay = payload.startsWith('at:') ? Number(payload.slice(3)) : Number.NaN;
        if (Number.isFinite(delay) && delay > 0)
          this.scheduler?.hintAt(entry.channel.name, Date.now() + delay);
        else this.scheduler?.hint(entry.channel.name);
        return;
      }
      const run = this.dispatchBroadcast(entry, payload);
      this.broadcasts.add(run);
      run.finally(() => this.broadcasts.delete(run));
    } catch (error) {
      this.events.emit('error', { error, during: `a notification on "${entry.channel.name}"` });
    }
  }

  private async dispatchBroadcast(entry: HandlerEntry, text: string): Promise<void> {
    const ch = entry.channel;
    try {
      if (ch.kind !== 'custom') return;
      const result = await ch.schema['~standard'].validate(JSON.parse(text));
      if (result.issues) {
        throw new PgPubSubError('INVALID_PAYLOAD', `Broadcast on "${ch.name}" does not match its schema.`);
      }
      await entry.handler({ channel: ch.name, payload: result.value, receivedAt: new Date() }, this.db);
    } catch (error) {
      this.events.emit('error', { error, during: `the broadcast handler of "${ch.name}"` });
    }
  }

  /**
   * Stops claiming, lets in-flight handlers finish within `timeoutMs` (default 30 s), then aborts them
   * through their `signal`: their transactions roll back, so their notifications stay pending for the
   * next listener. Closes the LISTEN connection it opened; the database client stays yours to close.
   */
  async stop({ timeoutMs = 30_000 }: { timeoutMs?: number } = {}): Promise<void> {
    checkDurations({ timeoutMs }, 'stop()');
    if (this.phase === 'new' || this.phase === 'stopped' || this.phase === 'stopping') return;
    const wasStarting = this.phase === 'starting';
    this.phase = 'stopping';
    clearInterval(this.presenceTimer);
    if (wasStarting) await this.starting?.catch(() => {});
    // A firing in progress commits or rolls back as a whole; a black-holed database must not hold up stop().
    if (this.schedules) await waitAtMost(this.schedules.stop(), Math.min(timeoutMs, 5000));
    const aborted = (await this.scheduler?.quiesce(timeoutMs)) ?? 0;
    if (aborted > 0) this.hardStop.abort();
    await this.scheduler?.settle(aborted > 0 ? 2000 : timeoutMs);
    await Promise.allSettled([...this.broadcasts]);
    await this.releaseSession(aborted > 0 ? 500 : 2000);
    this.telemetry?.stop();
    this.phase = 'stopped';
    this.events.emit('stopped', { aborted });
    this.unlog?.();
  }

  /**
   * Deletes this listener's wake-up flags (writers stop notifying at once), then closes its LISTEN
   * session. Bounded: a black-holed database must not hold up shutdown, and the flags stop counting
   * with the session anyway.
   */
  private async releaseSession(limitMs: number): Promise<void> {
    const session = this.session;
    if (!session) return;
    const key = session.key;
    const released = this.idle?.close(key) ?? Promise.resolve();
    const cleared = released.catch((error) =>
      this.events.emit('error', { error, during: 'clearing the wake-up flags' }),
    );
    await waitAtMost(cleared, limitMs);
    await waitAtMost(session.close(), 2000);
  }

  /**
   * Processes everything pending now, without LISTEN, and returns what happened. Meant for tests:
   * `await listener.drain()` after the code under test commits, then assert on the effects.
   * Notifications scheduled for later (retries) are left alone.
   */
  async drain(): Promise<DrainSummary> {
    if (this.phase !== 'new') {
      throw new PgPubSubError('LISTENER_STATE', 'drain() is for a listener that is not started.');
    }
    await this.ready();
    await assertNotificationsTable(
      this.sql,
      this.options.schema ?? DEFAULT_SCHEMA,
      this.hasOrdered(),
      this.hasPacked(),
    );
    const schedules = this.scheduleRunner(this.active());
    await schedules.check();
    await schedules.fireDue();
    return this.prepare().drain();
  }
}

/** How often a running listener checks whether its presence (last claim) changed, ms. */
const PRESENCE_MS = 5000;

/**
 * Republishes the listener's presence on its LISTEN session when a claim took work since the last
 * time: one constant SELECT on an idle connection at most every {@link PRESENCE_MS}, never on the
 * claim path.
 */
function presenceHeartbeat(scheduler: Scheduler, session: ListenSession): NodeJS.Timeout {
  let published = scheduler.lastClaimAt;
  const timer = setInterval(() => {
    if (scheduler.lastClaimAt === published) return;
    published = scheduler.lastClaimAt;
    void session.publish();
  }, PRESENCE_MS);
  timer.unref?.();
  return timer;
}

/** The `filter` option as JSON; a value PostgreSQL cannot store (NUL, lone surrogate) is refused by name. */
function filterJson(filter: Record<string, unknown>): string {
  try {
    return JSON.stringify(filter, storableString);
  } catch (error) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `createListener: \`filter\` cannot be used: ${(error as Error).message}`,
    );
  }
}

/**
 * Connections of the database client's pool a started listener may hold at once: one per concurrent
 * claim, plus one for the idle protocol (flag writes, probes). LISTEN has a connection of its own.
 */
export function poolConnectionsNeeded(concurrency: number): number {
  return concurrency + 1;
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
