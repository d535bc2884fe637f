import { hostname } from 'node:os';
import { PgPubSubError, type PgPubSubErrorCode, pgPubSubErrorCode } from '../errors.ts';
import type { LogFields } from './log.ts';

/** Exit codes of the CLI (documented in docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Runtime failure: database unreachable, unhealthy `status --check`, worker restart limit, crash. */
  failure: 1,
  /** Bad command line. */
  usage: 2,
  /** Configuration problem that a restart cannot fix (sysexits EX_CONFIG): no DATABASE_URL, missing module… */
  config: 78,
} as const;

const CONFIG_CODES: ReadonlySet<PgPubSubErrorCode> = new Set<PgPubSubErrorCode>([
  'NO_DATABASE_URL',
  'MODULE_NOT_FOUND',
  'MISSING_DEPENDENCY',
  'MODULE_LOAD_FAILED',
  'NO_LISTENER_EXPORT',
  'TABLE_MISSING',
  'UNKNOWN_CHANNEL',
  'CONFIG_NOT_FOUND',
  'CONFIG_INVALID',
  'INVALID_CHANNEL',
  'INVALID_CHANNEL_NAME',
  'DUPLICATE_CHANNEL',
  'LISTENER_STATE',
  'POOL_TOO_SMALL',
  'INVALID_SCHEDULE',
  'SCHEDULE_MISSING',
  'CHANNEL_NOT_INSTALLED',
  'STORAGE_OUTDATED',
  'DRIVER_MISSING',
]);

/** The exit code for an error that ends a command. */
export function exitCodeFor(error: unknown): number {
  const code = pgPubSubErrorCode(error);
  if (code === 'INVALID_OPTIONS') return EXIT.usage;
  if (code && CONFIG_CODES.has(code)) return EXIT.config;
  return EXIT.failure;
}

/** A usage error (exit code 2) with the command's help appended. */
export function usageError(message: string, usage: string): PgPubSubError {
  return new PgPubSubError('INVALID_OPTIONS', `${message}\n\n${usage}`);
}

/** The first line of an error's message (no stack), for one-line logs. */
export function errorMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/** Fields describing an error: message, code when known. */
export function errorFields(error: unknown): LogFields {
  const e = error as { code?: unknown } | null;
  const code = e && typeof e.code === 'string' ? e.code : undefined;
  return { error: errorMessage(error), code };
}

/**
 * Writes the error that ends a command to stderr: `error: <message>` (a PgPubSubError, whose message
 * says what to do), the stack of anything unexpected, or one JSON line with `json`.
 */
export function printFatal(error: unknown, json = false): void {
  const code = pgPubSubErrorCode(error);
  if (json) {
    // pino's shape, like the CLI's log lines (log.ts): level 50 is error.
    const line = {
      level: 50,
      time: Date.now(),
      pid: process.pid,
      hostname: hostname(),
      code,
      msg: error instanceof Error ? error.message : String(error),
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  } else if (code) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
  } else {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  }
}
