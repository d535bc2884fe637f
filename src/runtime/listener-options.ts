import type { PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import type { CustomChannel, TriggerChannel, TriggerOp } from '../channel.ts';
import type { BroadcastEvent, PayloadEvent, ScheduleEvent, TriggerEvent } from '../events.ts';
import type { Schedule } from '../schedule.ts';
import type { StandardSchemaV1 } from '../standard-schema.ts';
import type { Backoff } from './backoff.ts';

/** The types of a listener's options and handlers (types only: nothing here runs). */

/** The Drizzle database types a listener accepts. */
export type AnyDb = PostgresJsDatabase<any>;
/** The transaction type handed to handlers: the same as `db.transaction()` gives. */
export type TxOf<TDb extends AnyDb> = Parameters<Parameters<TDb['transaction']>[0]>[0];

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
}
