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
