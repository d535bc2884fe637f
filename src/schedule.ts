import { Cron } from 'croner';
import { assertChannelName, type CustomChannel } from './channel.ts';
import { PgPubSubError } from './errors.ts';
import type { StandardSchemaV1 } from './standard-schema.ts';

/**
 * What happens to slots missed while no listener ran (more than {@link MISFIRE_GRACE_MS} late):
 * `'latest'` (default) fires only the most recent missed slot; `'all'` fires every missed slot, at
 * most {@link MAX_CATCH_UP} (the most recent ones); a number `n` (0–{@link MAX_CATCH_UP}) fires the
 * `n` most recent. Slots less late than the grace period always fire.
 */
export type CatchUp = 'latest' | 'all' | number;

/** The most missed slots one schedule fires when listeners come back (`catchUp: 'all'`). */
export const MAX_CATCH_UP = 1000;

/**
 * A slot that is due less than this long ago (ms) is late, not missed: it always fires, whatever
 * `catchUp` says (a busy event loop or a restart must not lose slots). Quartz calls it the misfire threshold.
 */
export const MISFIRE_GRACE_MS = 60_000;

/** Options of {@link schedule}. */
export interface ScheduleOptions<TPayload> {
  /** IANA time zone the cron expression is read in, e.g. `'America/New_York'`. Default `'UTC'`. */
  timezone?: string;
  /** JSON value handed to every run as `event.payload`. Default `null`. */
  payload?: TPayload;
  /** Missed slots to fire when listeners come back after a downtime. Default `'latest'`. */
  catchUp?: CatchUp;
}

/** What a schedule stores with each slot's notification (internal). */
export interface StoredSlot {
  slot: string;
  payload: unknown;
}

/**
 * A cron schedule: a durable channel (named like the schedule) that the listener feeds with one
 * notification per slot. Create it with {@link schedule}; handle it with `listener.on(schedule, fn)`.
 */
export interface Schedule<TPayload = unknown> extends CustomChannel<StandardSchemaV1<StoredSlot>, false> {
  readonly schedule: {
    readonly cron: string;
    readonly timezone: string;
    readonly payload: TPayload;
    /** `catchUp` as a number of slots (`'latest'`: 1, `'all'`: {@link MAX_CATCH_UP}). */
    readonly catchUp: number;
  };
}

/** Any schedule. */
export type AnySchedule = Schedule<any>;

const slotSchema: StandardSchemaV1<StoredSlot> = {
  '~standard': {
    version: 1,
    vendor: 'drizzle-pgpubsub',
    validate(value) {
      const v = value as Partial<StoredSlot> | null;
      if (typeof v !== 'object' || v === null || typeof v.slot !== 'string' || !('payload' in v)) {
        return { issues: [{ message: 'a schedule notification is { slot: ISO string, payload }' }] };
      }
      return { value: { slot: v.slot, payload: v.payload } };
    },
  },
};

const invalid = (name: string, message: string) =>
  new PgPubSubError('INVALID_SCHEDULE', `schedule("${name}"): ${message}`);

/** Throws unless `timezone` is an IANA time zone this runtime knows. */
function assertTimezone(name: string, timezone: unknown): asserts timezone is string {
  try {
    if (typeof timezone !== 'string' || timezone === '') throw new RangeError('empty');
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw invalid(
      name,
      `\`timezone\` must be an IANA time zone such as 'Europe/Berlin' or 'UTC', got ${JSON.stringify(timezone)}.`,
    );
  }
}

function catchUpCount(name: string, catchUp: unknown): number {
  if (catchUp === undefined || catchUp === 'latest') return 1;
  if (catchUp === 'all') return MAX_CATCH_UP;
  if (typeof catchUp === 'number' && Number.isInteger(catchUp) && catchUp >= 0 && catchUp <= MAX_CATCH_UP) {
    return catchUp;
  }
  throw invalid(
    name,
    `\`catchUp\` must be 'latest', 'all' or an integer from 0 to ${MAX_CATCH_UP}, got ${JSON.stringify(catchUp)}.`,
  );
}

/** A croner job that computes slots only (never runs anything). */
export function cronOf(cron: string, timezone: string): Cron {
  return new Cron(cron, { timezone, mode: '5-or-6-parts' });
}

/**
 * Declares a cron schedule beside your tables. `drizzle-pgpubsub generate` writes it into a migration;
 * a listener with `.on(schedule, handler)` runs the handler once per slot, exactly once across all
 * listener processes, in a transaction like any durable channel (retries, dead letters).
 *
 * `cron`: 5 fields (minute precision) or 6 (a leading seconds field), read in `timezone` (default
 * UTC). Daylight saving time: a slot that falls in the spring-forward gap fires once at the first
 * instant after the gap; a fixed-time slot in the repeated fall-back hour fires once (first
 * occurrence), while wildcard-hour expressions fire in both hours (Vixie cron's rules).
 *
 * @example
 * export const nightlyReport = schedule('nightly_report', '0 3 * * *', { timezone: 'Europe/Berlin', payload: { kind: 'full' } });
 */
export function schedule<const TPayload = null>(
  name: string,
  cron: string,
  options: ScheduleOptions<TPayload> = {},
): Schedule<TPayload> {
  assertChannelName(name);
  const timezone = options.timezone ?? 'UTC';
  assertTimezone(name, timezone);
  if (typeof cron !== 'string') throw invalid(name, `the cron expression must be a string.`);
  const expression = cron.trim().replace(/\s+/g, ' ');
  if (expression.includes('?')) {
    throw invalid(
      name,
      `\`?\` in cron expressions depends on the time a process starts; use \`*\` or a value.`,
    );
  }
  let next: Date | null;
  try {
    next = cronOf(expression, timezone).nextRun();
  } catch (error) {
    throw invalid(
      name,
      `cannot read cron expression ${JSON.stringify(cron)}: ${(error as Error).message.replace(/\.+$/, '')}. Use 5 fields (minute hour day month weekday) or 6 with leading seconds.`,
    );
  }
  if (next === null) throw invalid(name, `cron expression ${JSON.stringify(cron)} never matches a date.`);
  const payload = (options.payload === undefined ? null : options.payload) as TPayload;
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    throw invalid(name, `\`payload\` must be JSON: ${(error as Error).message}`);
  }
  if (json === undefined) throw invalid(name, '`payload` must be a JSON value.');
  return Object.freeze({
    kind: 'custom' as const,
    [Symbol.for('drizzle-pgpubsub.channel')]: 'custom' as const,
    name,
    schema: slotSchema,
    broadcast: false as const,
    schedule: Object.freeze({
      cron: expression,
      timezone,
      payload: JSON.parse(json) as TPayload,
      catchUp: catchUpCount(name, options.catchUp),
    }),
  }) as unknown as Schedule<TPayload>;
}

/** True when `value` is a schedule made by {@link schedule}. */
export function isSchedule(value: unknown): value is AnySchedule {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { schedule?: { cron?: unknown } }).schedule?.cron === 'string' &&
    (value as { kind?: unknown }).kind === 'custom'
  );
}
