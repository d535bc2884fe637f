import type postgres from 'postgres';
import type { AnyChannel } from '../channel.ts';
import type { ListenerTelemetry } from '../telemetry/listener-telemetry.ts';
import type { RowDecoder } from './decode.ts';
import type { DrizzleParts } from './handler-tx.ts';
import type { RateLimiter } from './rate-limit.ts';

/** One `.on(channel, handler)` registration, resolved for claiming. */
export interface Registration {
  channel: AnyChannel;
  handler: (event: any, tx: any) => unknown;
  decoder: RowDecoder | undefined;
  maxAttempts: number;
  backoff: (failedAttempt: number) => number;
  timeoutMs: number | undefined;
  /** Handlers (or batch calls) of this channel at once in this process; undefined: no limit of its own. */
  concurrency: number | undefined;
  /** Limit on handler starts of this channel in this process (`rate`). */
  rate: RateLimiter | undefined;
  /** Lease length in ms: the handler runs outside the claim transaction (lease.ts). */
  leaseMs: number | undefined;
  /** Set for `onBatch`: the handler gets all events of a claim in one call. */
  batch: { size: number; maxWaitMs: number } | undefined;
  /** Spans and metrics (telemetry/): undefined when OpenTelemetry is absent or turned off. */
  telemetry?: ListenerTelemetry | undefined;
}

/** A position in claim order: a row's `run_at` (epoch microseconds) and id, both decimal strings. */
export interface ClaimCursor {
  runAtUs: string;
  id: string;
}

/** What one claim transaction did. */
export interface ClaimOutcome {
  claimed: number;
  processed: { id: string; attempt: number; durationMs: number }[];
  failed: { id: string; attempt: number; error: unknown; retryAt: Date | null; dead: boolean }[];
  /** Claimed but left pending, untouched, because the transaction reached its subtransaction budget. */
  released: number;
  /** Savepoints the handlers opened (each may hold a subtransaction id until commit). */
  subtransactions: number;
}

/** Context shared by every claim of one listener. */
export interface ClaimContext {
  sql: postgres.Sql;
  parts: DrizzleParts;
  table: string;
  filter: string | null;
  /** Stored bytes of images and payloads one claim loads at most (plus one row); default 16 MiB. */
  batchBytes?: number | undefined;
  /** The user's Drizzle database, handed to lease handlers. */
  db: unknown;
  /** Aborted when the listener gives up waiting for in-flight handlers at stop(). */
  hardStop: AbortSignal;
  /**
   * The quoted `expand_packed` function of the storage schema (storage version 5), called before each
   * claim of an unordered trigger channel; absent: packed rows are left alone.
   */
  expand?: string | undefined;
  /** Expand before every claim, not only when it may find something (expand-gate.ts): `drain()`. */
  expandEveryClaim?: boolean;
}
