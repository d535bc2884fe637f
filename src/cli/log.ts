import { hostname } from 'node:os';
import type { ListenerLogger } from '../telemetry/logger.ts';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** A log level of the CLI. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** pino's level numbers, which its JSON lines carry (and `pino-pretty` reads). */
export const PINO_LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/** Structured fields of a log line. `undefined` values are left out. */
export type LogFields = Record<string, unknown>;

/** One log method, called as pino's are: `log.info('message')` or `log.info({ fields }, 'message')`. */
export interface CliLogMethod {
  (message: string): void;
  (fields: LogFields, message: string): void;
}

/**
 * The CLI's logger: pino-compatible, so the library's listener logs through it (`createListener(db,
 * { logger })`) exactly as it would through pino, and its JSON lines are pino's.
 */
export interface Logger extends ListenerLogger {
  readonly level: LogLevel;
  readonly json: boolean;
  debug: CliLogMethod;
  info: CliLogMethod;
  warn: CliLogMethod;
  error: CliLogMethod;
  /** True when lines of `level` are written (pino's name). */
  isLevelEnabled(level: string): boolean;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel;
  /** One JSON object per line in pino's shape (`level` number, `time` epoch ms, `pid`, `hostname`, `msg`). */
  json?: boolean;
  /** Fields on every line (e.g. `pid`, `worker`, `role`); the text format shows them as a `[tag]`. */
  bound?: LogFields;
  /** Writes one finished line (without newline). Default: stdout. */
  write?: (line: string) => void;
  now?: () => Date;
}

function textValue(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  const list = Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null);
  const text = typeof value === 'string' ? value : list ? value.join(',') : JSON.stringify(value);
  return /^[^\s"=]+$/.test(text ?? '') ? (text as string) : JSON.stringify(text);
}

function tagOf(bound: LogFields): string {
  const parts: string[] = [];
  if (bound.role === 'supervisor') parts.push('supervisor');
  if (bound.worker !== undefined) parts.push(`worker ${bound.worker}`);
  if (bound.pid !== undefined) parts.push(`pid ${bound.pid}`);
  return parts.length ? `[${parts.join(' ')}] ` : '';
}

/** An error as pino's standard serializer writes it: `{ type, message, stack, code? }`. */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: error.message,
    stack: error.stack,
    ...(code === undefined ? {} : { code }),
  };
}

/** Creates a {@link Logger}. Lines below `level` are dropped. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const json = options.json ?? false;
  const { pid = process.pid, ...bound } = options.bound ?? {};
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const min = LOG_LEVELS.indexOf(level);
  const tag = tagOf({ ...bound, pid });
  const host = hostname();
  const enabled = (l: string) => {
    const i = LOG_LEVELS.indexOf(l as LogLevel);
    return i >= 0 && i >= min;
  };
  const emit = (l: LogLevel, first: LogFields | string, second?: string) => {
    if (!enabled(l)) return;
    const message = typeof first === 'string' ? first : (second ?? '');
    const fields = typeof first === 'string' ? {} : first;
    const defined = Object.entries(fields).filter(([, v]) => v !== undefined);
    if (json) {
      write(
        JSON.stringify({
          level: PINO_LEVELS[l],
          time: now().getTime(),
          pid,
          hostname: host,
          ...bound,
          ...Object.fromEntries(defined.map(([k, v]) => [k, k === 'err' ? serializeError(v) : v])),
          msg: message,
        }),
      );
      return;
    }
    // Text: the message already says what the error was; an error contributes its code only.
    const extra = defined
      .flatMap(([k, v]) => {
        if (k !== 'err') return [[k, v] as const];
        const code = (v as { code?: unknown } | null)?.code;
        return code === undefined ? [] : [['code', code] as const];
      })
      .map(([k, v]) => ` ${k}=${textValue(v)}`)
      .join('');
    write(
      `${now().toISOString()} ${l.toUpperCase().padEnd(5)} ${tag}${message.replaceAll('\n', ' ')}${extra}`,
    );
  };
  const method =
    (l: LogLevel): CliLogMethod =>
    (first: LogFields | string, second?: string) =>
      emit(l, first, second);
  return {
    level,
    json,
    isLevelEnabled: enabled,
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
  };
}
