import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import type { CustomChannel, TriggerChannel, TriggerOp } from '../channel.ts';
import type { BroadcastEvent, PayloadEvent, ScheduleEvent, TriggerEvent } from '../events.ts';
import type { Schedule } from '../schedule.ts';
import type { StandardSchemaV1 } from '../standard-schema.ts';
import type { MetricsOptions, TracingOptions } from '../telemetry/listener-telemetry.ts';
import type { ListenerLogger } from '../telemetry/logger.ts';
import type { Backoff } from './backoff.ts';
import type { DrizzleSettings } from './drizzle-adapter.ts';

/** The types of a listener's options and handlers (types only: nothing here runs). */

/** The Drizzle database types a listener accepts. */
export type AnyDb = PostgresJsDatabase<any>;
/** The transaction type handed to handlers: the same as `db.transaction()` gives. */
export type TxOf<TDb extends AnyDb> = Parameters<Parameters<TDb['transaction']>[0]>[0];

/** The event a handler of a durable channel receives (never a broadcast's). */
export type EventOf<TChannel> =
  TChannel extends TriggerChannel<infer TTable, infer TOp extends TriggerOp>
    ? TriggerEvent<TTable, TOp>
    : TChannel extends CustomChannel<infer TSchema, false>
      ? PayloadEvent<StandardSchemaV1.InferOutput<TSchema>>
      : never;

/** The handler type of a channel. */
export type HandlerOf<TChannel, TDb extends AnyDb> =
  TChannel extends TriggerChannel<infer TTable, infer TOp extends TriggerOp>
    ? (event: TriggerEvent<TTable, TOp>, tx: TxOf<TDb>) => unknown
    : TChannel extends Schedule<infer TPayload>
      ? (event: ScheduleEvent<TPayload>, tx: TxOf<TDb>) => unknown
      : TChannel extends CustomChannel<infer TSchema, true>
        ? (event: BroadcastEvent<StandardSchemaV1.InferOutput<TSchema>>, db: TDb) => unknown
        : TChannel extends CustomChannel<infer TSchema, boolean>
          ? (event: PayloadEvent<StandardSchemaV1.InferOutput<TSchema>>, tx: TxOf<TDb>) => unknown
          : never;

/** What a lease handler's event adds: a key that stays the same across attempts. */
export interface LeaseFields {
  /**
   * Stable across every attempt of this notification (its id, `"<channel>:<id>"`): pass it to the
   * API you call (an `Idempotency-Key` header, a unique column) so a retried attempt is a no-op there.
   */
  idempotencyKey: string;
}

/** The handler of a channel registered with `{ lease }`: runs outside any transaction, gets `db`. */
export type LeaseHandlerOf<TChannel, TDb extends AnyDb> = [EventOf<TChannel>] extends [never]
  ? never
  : (event: EventOf<TChannel> & LeaseFields, db: TDb) => unknown;

/** A batch handler's report of the events it could not handle; the others count as handled. */
export interface BatchResult {
  /** Events (matched by `id`) that failed: each gets a failed attempt (retry with backoff, or dead letter). */
  failed?: ReadonlyArray<{ event: { id: string }; error: unknown }>;
}

/** The handler of `listener.onBatch(channel, …)`: one call, in one claim transaction, for many events. */
export type BatchHandlerOf<TChannel, TDb extends AnyDb> = [EventOf<TChannel>] extends [never]
  ? never
  : (
      events: EventOf<TChannel>[],
      tx: TxOf<TDb>,
    ) => BatchResult | undefined | void | Promise<BatchResult | undefined> | Promise<void>;

/** A duration: milliseconds, or a string such as `'500ms'`, `'30s'`, `'5m'`, `'1h'`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h'}`;

/**
 * At most `limit` handler starts per `perMs` (a sliding window, per listener process), or the short
 * form `'100/s'`, `'20/m'`, `'500/h'`.
 */
export type Rate = { limit: number; perMs: number } | `${number}/${'s' | 'm' | 'h'}`;

/** Options of `listener.on(channel, handler, options)`. */
export interface HandlerOptions extends RetryOptions {
  /**
   * Handlers of this channel running at once in this listener process. Default: no limit of its own
   * (the listener's `concurrency` bounds all channels together).
   */
  concurrency?: number;
  /** Handler starts of this channel per time window, in this listener process. Default: no limit. */
  rate?: Rate;
  /** Only on lease handlers (see {@link LeaseHandlerOptions}). */
  lease?: undefined;
}

/** Options of a long handler: `listener.on(channel, handler, { lease: '5m' })`. */
export interface LeaseHandlerOptions extends Omit<HandlerOptions, 'lease'> {
  /**
   * Run the handler outside any transaction under a lease of this length, renewed by a heartbeat
   * every third of it; completion is a short transaction of its own. If the process dies, another
   * listener takes the notification over once the lease runs out (at-least-once: use
   * `event.idempotencyKey`). `concurrency` defaults to the listener's `concurrency`.
   */
  lease: Duration;
}

/** Options of `listener.onBatch(channel, handler, options)`. */
export interface BatchHandlerOptions extends RetryOptions {
  /** The most events per call (one claim transaction). Default: the listener's `batchSize` (100). */
  size?: number;
  /**
   * How long to let events accumulate before calling the handler with fewer than `size`. Default 0:
   * call as soon as something is there (a full backlog is always handed over at once).
   */
  maxWaitMs?: number;
  /** Batch handler calls of this channel running at once in this process. Default: no limit of its own. */
  concurrency?: number;
}

/** Retry and timeout settings, per listener or per handler. */
export interface RetryOptions {
  /** Attempts before a notification is dead-lettered (`status = 'failed'`). Default 10. */
  maxAttempts?: number;
  /** Delay before the next attempt. Default: exponential from 1 s, ×2, ±20% jitter, at most 1 h. */
  backoff?: Backoff;
  /** Abort a handler that runs longer (its transaction work is rolled back; counts as a failed attempt). */
  timeoutMs?: number;
}

/** Options of `createListener()`. */
export interface ListenerOptions extends RetryOptions {
  /** Claim transactions that run at once (each holds one pooled connection). Default 4. */
  concurrency?: number;
  /**
   * The most notifications one claim transaction takes. Default 100. Claims take fewer when handlers
   * write through `tx` (at most 60 savepoints per transaction) or are slow (a batch lasts ~200 ms).
   */
  batchSize?: number;
  /**
   * The most bytes of row images and payloads one claim transaction loads, as stored (after TOAST
   * compression), so a backlog of large payloads cannot exhaust the listener's memory. A claim always
   * takes at least one notification, however large. Default 16 MiB (16777216).
   */
  batchBytes?: number;
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
  /**
   * The Drizzle settings your `db` was created with that handlers' `tx` should have: `relations`
   * (drizzle-orm 1.0) or `schema` (0.x) for `tx.query…`, the query `logger`, and `casing` (0.x).
   * Each one given wins over what the listener reads from `db` (which works on 0.44, 0.45 and 1.0
   * today, but reads Drizzle internals): pass them to depend on public API only.
   * @example createListener(db, { drizzle: { relations, logger: true } })
   */
  drizzle?: DrizzleSettings;
  /**
   * OpenTelemetry tracing (docs/observability.md). Default: on when `@opentelemetry/api` is
   * installed (loaded lazily at start; spans go to the global tracer provider, a no-op until an SDK
   * registers one). `false` turns it off; `{ tracerProvider }` uses that provider.
   */
  tracing?: boolean | TracingOptions;
  /**
   * OpenTelemetry metrics (docs/observability.md). Default: on when `@opentelemetry/api` is
   * installed (the global meter provider, a no-op until an SDK registers one). `false` turns them
   * off; `{ meterProvider, backlog }` picks the provider and whether the backlog gauges query.
   */
  metrics?: boolean | MetricsOptions;
  /**
   * A pino-compatible logger (`info`/`warn`/`error`/`debug` taking `(object, message)`), e.g.
   * `pino()`: the listener logs its start and stop (info), failed attempts (warn), dead letters and
   * errors (error). Default: none; the library never writes to stdout or stderr by itself.
   */
  logger?: ListenerLogger;
}
