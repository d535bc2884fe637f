import type { InferSelectModel } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { TriggerOp } from './channel.ts';

/** Fields every durable event carries. */
export interface EventMeta {
  /** The notification's id (a bigint, as a decimal string). */
  id: string;
  /** The channel name. */
  channel: string;
  /** When the notification was written. */
  createdAt: Date;
  /** This attempt's number, starting at 1. */
  attempt: number;
  /** JSON context set with `withContext()` in the producing transaction (`{}` if none). */
  context: Record<string, unknown>;
  /** Aborted when the handler times out or the listener stops past its timeout. */
  signal: AbortSignal;
}

type Row<TTable extends PgTable> = InferSelectModel<TTable>;

/**
 * The event of a trigger channel, narrowed by `op`. Besides the channel's own ops, every trigger
 * channel can receive `snapshot` events: written by `backfill()`, one per existing row, with the row
 * image as the trigger would store it in `new` (`old` is `null`). Treat a snapshot like an upsert.
 * `truncate` (only with `on: [..., 'truncate']`) carries no row images: the whole table was emptied.
 */
export type TriggerEvent<TTable extends PgTable, TOp extends TriggerOp = TriggerOp> =
  | (TOp extends 'insert'
      ? EventMeta & { op: 'insert'; old: null; new: Row<TTable> }
      : TOp extends 'update'
        ? EventMeta & { op: 'update'; old: Row<TTable>; new: Row<TTable> }
        : TOp extends 'delete'
          ? EventMeta & { op: 'delete'; old: Row<TTable>; new: null }
          : TOp extends 'truncate'
            ? EventMeta & { op: 'truncate'; old: null; new: null }
            : never)
  | SnapshotEvent<TTable>;

/** An event written by `backfill()`: the current image of one existing row. */
export type SnapshotEvent<TTable extends PgTable> = EventMeta & {
  op: 'snapshot';
  old: null;
  new: Row<TTable>;
};

/** The event of a durable custom channel. */
export type PayloadEvent<TPayload> = EventMeta & { payload: TPayload };

/** The event of a schedule: one per slot, `slot` being the time the slot was due. */
export type ScheduleEvent<TPayload> = EventMeta & { slot: Date; payload: TPayload };

/** The event of a broadcast channel (nothing stored, so no id or attempts). */
export interface BroadcastEvent<TPayload> {
  channel: string;
  payload: TPayload;
  receivedAt: Date;
}

/** What the listener reports through `listener.events`. */
export interface ListenerEventMap {
  /** A notification was handled and deleted (reported after commit). */
  processed: { channel: string; id: string; attempt: number; durationMs: number };
  /** An attempt failed; `retryAt` is set when another attempt will follow. */
  failed: { channel: string; id: string; attempt: number; error: unknown; retryAt: Date | null };
  /** A notification became `failed` (dead letter): out of attempts, or impossible to decode or validate. */
  dead: { channel: string; id: string; attempts: number; error: unknown };
  /** A problem outside any one handler (connection lost, claim failed); the listener carries on. */
  error: { error: unknown; during: string };
  /** The listener is listening and has swept for pending work. */
  started: { channels: string[] };
  /** The listener has stopped. */
  stopped: { aborted: number };
}

/** A tiny typed event emitter: subscribers never break the listener, and `error` never throws. */
export class ListenerEvents {
  private readonly subscribers = new Map<keyof ListenerEventMap, Set<(payload: any) => void>>();

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof ListenerEventMap>(name: K, fn: (payload: ListenerEventMap[K]) => void): () => void {
    const set = this.subscribers.get(name) ?? new Set();
    this.subscribers.set(name, set);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** @internal */
  emit<K extends keyof ListenerEventMap>(name: K, payload: ListenerEventMap[K]): void {
    for (const fn of this.subscribers.get(name) ?? []) {
      try {
        fn(payload);
      } catch (error) {
        if (name !== 'error') this.emit('error', { error, during: `an "${name}" event subscriber` });
      }
    }
  }
}
