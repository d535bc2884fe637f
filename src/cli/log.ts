import { PgPubSubError, type PgPubSubErrorCode } from '../errors.ts';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** A log level of the CLI. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured fields of a log line. `undefined` values are left out. */
export type LogFields = Record<string, unknown>;

/** A small leveled logger writing one line per entry: readable text or JSON. */
export interface Logger {
  readonly level: LogLevel;
  readonly json: boolean;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** True when lines of `level` are written. */
  enabled(level: LogLevel): boolean;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  json?: boolean;
  /** Fields on every line (e.g. `pid`, `worker`); the text format shows them as a `[tag]`. */
  bound?: LogFields;
  /** Writes one finished line (without newline). Default: stdout. */
  write?: (line: string) => void;
  now?: () => Date;
}

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
]);

/** The `code` of a PgPubSubError from any copy of this package, else undefined. */
export function errorCode(error: unknown): string | undefined {
  const e = error as { name?: unknown; code?: unknown } | null;
  return e?.name === 'PgPubSubError' && typeof e.code === 'string' ? e.code : undefined;
}

/** The exit code for an error that ends a command. */
export function exitCodeFor(error: unknown): number {
  const code = errorCode(error);
  if (code === 'INVALID_OPTIONS') return EXIT.usage;
  if (code && CONFIG_CODES.has(code as PgPubSubErrorCode)) return EXIT.config;
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

/** Parses `--log-level`. */
export function parseLogLevel(value: string | undefined, usage: string): LogLevel {
  if (value === undefined) return 'info';
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw usageError(
    `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}.`,
    usage,
  );
}

function textValue(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /^[^\s"=]+$/.test(text ?? '') ? (text as string) : JSON.stringify(text);
}

function tagOf(bound: LogFields): string {
  const parts: string[] = [];
  if (bound.role === 'supervisor') parts.push('supervisor');
  if (bound.worker !== undefined) parts.push(`worker ${bound.worker}`);
  if (bound.pid !== undefined) parts.push(`pid ${bound.pid}`);
  return parts.length ? `[${parts.join(' ')}] ` : '';
}

/** Creates a {@link Logger}. Lines below `level` are dropped. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const json = options.json ?? false;
  const bound = options.bound ?? {};
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const min = LOG_LEVELS.indexOf(level);
  const tag = tagOf(bound);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= min;
  const emit = (l: LogLevel, message: string, fields: LogFields = {}) => {
    if (!enabled(l)) return;
    const defined = Object.entries(fields).filter(([, v]) => v !== undefined);
    if (json) {
      write(
        JSON.stringify({
          time: now().toISOString(),
          level: l,
          ...bound,
          msg: message,
          ...Object.fromEntries(defined),
        }),
      );
      return;
    }
    const extra = defined.map(([k, v]) => ` ${k}=${textValue(v)}`).join('');
    write(
      `${now().toISOString()} ${l.toUpperCase().padEnd(5)} ${tag}${message.replaceAll('\n', ' ')}${extra}`,
    );
  };
  return {
    level,
    json,
    enabled,
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/**
 * Writes the error that ends a command to stderr: `error: <message>` (a PgPubSubError, whose message
 * says what to do), the stack of anything unexpected, or one JSON line with `json`.
 */
export function printFatal(error: unknown, json = false): void {
  const code = errorCode(error);
  if (json) {
    const line = {
      time: new Date().toISOString(),
      level: 'error',
      pid: process.pid,
      msg: error instanceof Error ? error.message : String(error),
      code,
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  } else if (code) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
  } else {
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  }
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

/** A short human duration: `850ms`, `2s`, `1.5s`, `3m 20s`, `2h 5m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86_400)
    return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600) ? ` ${Math.floor((s % 86_400) / 3600)}h` : ''}`;
}

/** Left/right-aligned text table (numbers right-aligned). */
export function formatTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  return cells
    .map((r) =>
      r
        .map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
