import { PgPubSubError } from '../errors.ts';
import { MAX_TIMER_MS } from '../timeouts.ts';

/** The number-valued settings shared by `createListener()`, `.on()`, `.onBatch()` and `stop()`. */
interface TimedOptions {
  maxAttempts?: number | undefined;
  timeoutMs?: number | undefined;
  pollIntervalMs?: number | false | undefined;
  idleWaitMs?: number | undefined;
  maxWaitMs?: number | undefined;
}

/**
 * Refuses durations Node cannot time and attempt counts that make no sense, before anything runs.
 * (`setTimeout` fires a delay above 2^31 - 1 ms after 1 ms, so a `timeoutMs` of a month would abort
 * every handler at once.)
 */
export function checkDurations(options: TimedOptions, where: string): void {
  const { maxAttempts } = options;
  if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    throw new PgPubSubError(
      'INVALID_OPTIONS',
      `${where}: \`maxAttempts\` must be a positive integer (1: no retries), got ${String(maxAttempts)}.`,
    );
  }
  for (const key of ['timeoutMs', 'pollIntervalMs', 'idleWaitMs', 'maxWaitMs'] as const) {
    const value = options[key];
    if (value === undefined || (key === 'pollIntervalMs' && value === false)) continue;
    const min = key === 'timeoutMs' || key === 'pollIntervalMs' ? 1 : 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
      throw new PgPubSubError(
        'INVALID_OPTIONS',
        `${where}: \`${key}\` must be a number of milliseconds from ${min} to ${MAX_TIMER_MS} (~24.8 days, Node's timer limit)${key === 'pollIntervalMs' ? ', or false' : ''}, got ${String(value)}.`,
      );
    }
  }
}
