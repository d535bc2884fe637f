import { usageError } from './exit-codes.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';

/** Parses `--log-level`. */
export function parseLogLevel(value: string | undefined, usage: string): LogLevel {
  if (value === undefined) return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw usageError(
    `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}.`,
    usage,
  );
}

/** Parses a duration: `500ms`, `30s`, `5m`, `2h`, `7d`, or a plain number of milliseconds. */
export function parseDuration(value: string, flag: string, usage: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) {
    throw usageError(
      `${flag} must be a duration such as 500ms, 30s, 5m, 2h or 7d (a plain number is milliseconds), got ${JSON.stringify(value)}.`,
      usage,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms'] ?? 1;
  return Math.round(Number(match[1]) * unit);
}

/** Parses a positive integer flag. */
export function parsePositiveInt(value: string, flag: string, usage: string, min = 1): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw usageError(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}.`, usage);
  }
  return n;
}
