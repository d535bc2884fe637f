import type postgres from 'postgres';
import { PgPubSubError } from '../errors.ts';
import type { StoredSlot } from '../schedule.ts';
import { dueSlots } from '../schedule-slots.ts';
import { notifyFunctionRef, schedulesRef } from '../storage/sql-names.ts';
import { MAX_TIMER_MS } from '../timeouts.ts';

/** Timers fire this much after the slot, so a slot is due on the database's clock when they do. */
const MARGIN_MS = 5;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

interface Row {
  cron: string;
  timezone: string;
  catch_up: number;
  payload: unknown;
  fence_text: string;
  fence_ms: number;
  now_ms: number;
}

/**
 * Fires the schedules a listener handles: per schedule ONE timer armed for its next slot (no polling);
 * when it fires, the due slots are computed from the stored fence (`last_slot`) and the database's
 * clock, and one transaction moves the fence with a compare-and-set on its old value and stores one
 * notification per fired slot (via the storage's `notify()` function, so idle listeners are woken).
 * Of several listeners that race for the same slots exactly one transaction moves the fence; the
 * others find it moved, recompute, and arm their timers for the next slot. The notifications are then
 * claimed and handled like any durable notification (one transaction, retries, dead letters).
 */
export class ScheduleRunner {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly failures = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly schema: string,
    private readonly names: readonly string[],
    private readonly onError: (error: unknown, during: string) => void,
  ) {}

  /** Throws `SCHEDULE_MISSING` unless the schedules table has a row for every schedule handled. */
  async check(): Promise<void> {
    if (this.names.length === 0) return;
    const table = schedulesRef(this.schema);
    const [exists] = await this.sql.unsafe<{ ok: boolean }[]>('SELECT to_regclass($1) IS NOT NULL AS ok', [
      table,
    ]);
    const found = exists?.ok
      ? (
          await this.sql.unsafe<{ name: string }[]>(`SELECT "name" FROM ${table} WHERE "name" = ANY ($1)`, [
            this.names as string[],
          ])
        ).map((r) => r.name)
      : [];
    const missing = this.names.filter((n) => !found.includes(n));
    if (missing.length > 0) {
      throw new PgPubSubError(
        'SCHEDULE_MISSING',
        `Schedule${missing.length === 1 ? '' : 's'} ${missing.map((n) => `"${n}"`).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not installed in ${table}. Export ${missing.length === 1 ? 'it' : 'them'} from your Drizzle schema files, run \`npx drizzle-pgpubsub generate\` and then \`npx drizzle-kit migrate\`.`,
      );
    }
  }

  /** Fires what is due now and arms a timer per schedule. */
  start(): void {
    for (const name of this.names) this.run(name);
  }

  /** Clears the timers and waits for a firing in progress (it commits or rolls back as a whole). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  /** Fires every due slot once, arming nothing (`listener.drain()`). */
  async fireDue(): Promise<void> {
    for (const name of this.names) await this.fire(name);
  }

  private run(name: string): void {
    if (this.stopped) return;
    this.timers.delete(name);
    const run = this.fire(name).then(
      (waitMs) => {
        this.failures.delete(name);
        if (waitMs !== null) this.arm(name, waitMs + MARGIN_MS);
      },
      (error) => {
        const failures = (this.failures.get(name) ?? 0) + 1;
        this.failures.set(name, failures);
        this.onError(error, `firing schedule "${name}"`);
        this.arm(name, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (failures - 1)));
      },
    );
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
  }

  private arm(name: string, ms: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => this.run(name), Math.max(0, Math.min(ms, MAX_TIMER_MS)));
    timer.unref?.();
    this.timers.set(name, timer);
  }

  /** Fires every due slot of `name`; returns ms until its next slot (`null`: none ever). */
  private async fire(name: string): Promise<number | null> {
    const table = schedulesRef(this.schema);
    for (;;) {
      if (this.stopped) return null;
      const [row] = await this.sql.unsafe<Row[]>(
        `SELECT "cron", "timezone", "catch_up", "payload", "last_slot"::text AS fence_text,
  floor(extract(epoch FROM "last_slot") * 1000)::float8 AS fence_ms,
  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now_ms
FROM ${table} WHERE "name" = $1`,
        [name],
      );
      if (!row) {
        throw new PgPubSubError(
          'SCHEDULE_MISSING',
          `Schedule "${name}" is no longer in ${table} (a migration removed it); its handler gets no new slots. Remove it from the listener.`,
        );
      }
      const now = new Date(row.now_ms);
      const due = dueSlots(
        { cron: row.cron, timezone: row.timezone, catchUp: row.catch_up },
        new Date(row.fence_ms),
        now,
      );
      if (due.fence === null) return due.next === null ? null : due.next.getTime() - now.getTime();
      const slots: StoredSlot[] = due.fire.map((d) => ({ slot: d.toISOString(), payload: row.payload }));
      await this.sql.begin(async (tx) => {
        const moved = await tx.unsafe(
          `UPDATE ${table} SET "last_slot" = $2::text::timestamptz WHERE "name" = $1 AND "last_slot" = $3::text::timestamptz`,
          [name, due.fence!.toISOString(), row.fence_text],
        );
        if (moved.count === 0 || slots.length === 0) return;
        await tx.unsafe(
          `SELECT ${notifyFunctionRef(this.schema)}($1, s.value) FROM jsonb_array_elements($2::text::jsonb) WITH ORDINALITY AS s(value, n) ORDER BY s.n`,
          [name, JSON.stringify(slots)],
        );
      });
    }
  }
}
