import type { CommandArgs, CommandOptions } from '../command.ts';
import { usageError } from '../exit-codes.ts';
import { parseDuration, parseLogLevel, parsePositiveInt } from '../parse.ts';
import { DEFAULT_SEMI_SPACE_MB } from './memory-cap.ts';
import { usage } from './usage.ts';

/** Parsed `listen` options. */
export interface ListenArgs {
  module: string;
  channels: string[] | undefined;
  concurrency: number | undefined;
  batchSize: number | undefined;
  processes: number | undefined;
  shutdownTimeoutMs: number;
  pollIntervalMs: number | false | undefined;
  listenUrl: string | undefined;
  databaseUrl: string | undefined;
  connectTimeoutMs: number | undefined;
  maxRestarts: number;
  restartDelayMs: number;
  json: boolean;
  logLevel: ReturnType<typeof parseLogLevel>;
  worker: boolean;
  /** `--metrics-port`: serve Prometheus metrics (0: a free port, logged). */
  metricsPort: number | undefined;
  /** `--metrics-host`, default 127.0.0.1. */
  metricsHost: string;
  /**
   * Semi-space size (MB) the listener processes start with (`--semi-space-mb`, default 2);
   * undefined with `--no-memory-cap` or `--semi-space-mb 0`.
   */
  semiSpaceMb: number | undefined;
}

/** The options of `listen` (`--help` is the runner's). */
export const LISTEN_OPTIONS = {
  channels: { type: 'string' },
  concurrency: { type: 'string' },
  'batch-size': { type: 'string' },
  processes: { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'poll-interval': { type: 'string' },
  'listen-url': { type: 'string' },
  'database-url': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'max-restarts': { type: 'string' },
  'restart-delay': { type: 'string' },
  json: { type: 'boolean' },
  'log-level': { type: 'string' },
  worker: { type: 'boolean' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'semi-space-mb': { type: 'string' },
  'no-memory-cap': { type: 'boolean' },
} as const satisfies CommandOptions;

type ListenValues = {
  [K in keyof typeof LISTEN_OPTIONS]?: (typeof LISTEN_OPTIONS)[K]['type'] extends 'boolean'
    ? boolean
    : string;
};

/** Options only the supervisor uses; workers get every other argument unchanged. */
const SUPERVISOR_ONLY = new Set(['processes', 'max-restarts', 'restart-delay']);

/**
 * Reads the parsed arguments of `listen`; throws INVALID_OPTIONS (exit 2) with the help text. Also
 * returns `childArgv`, the arguments a worker gets from the supervisor (`--worker` added).
 */
export function parseListenArgs(parsed: CommandArgs): ListenArgs & { childArgv: string[] } {
  const argv = parsed.argv;
  const v = parsed.values as ListenValues;
  const childArgv: string[] = [];
  const skip = new Set<number>();
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && SUPERVISOR_ONLY.has(token.name)) {
      skip.add(token.index);
      if (token.value !== undefined && !token.inlineValue) skip.add(token.index + 1);
    }
  }
  argv.forEach((arg, i) => {
    if (!skip.has(i)) childArgv.push(arg);
  });
  childArgv.push('--worker');
  if (parsed.positionals.length !== 1) {
    throw usageError(
      parsed.positionals.length === 0
        ? 'listen needs the path of the module that exports your listener, e.g. drizzle-pgpubsub listen ./src/listeners.ts'
        : `listen takes one module path, got ${parsed.positionals.length}: ${parsed.positionals.join(' ')}`,
      usage,
    );
  }
  const int = (value: string | undefined, flag: string, min = 1) =>
    value === undefined ? undefined : parsePositiveInt(value, flag, usage, min);
  const duration = (value: string | undefined, flag: string) =>
    value === undefined ? undefined : parseDuration(value, flag, usage);
  const port = (value: string | undefined) => {
    const n = int(value, '--metrics-port', 0);
    if (n !== undefined && n > 65535)
      throw usageError(`--metrics-port must be at most 65535, got ${n}.`, usage);
    return n;
  };
  const channels = v.channels
    ?.split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  if (channels !== undefined && channels.length === 0)
    throw usageError('--channels needs at least one channel name.', usage);
  const poll = duration(v['poll-interval'], '--poll-interval');
  const semiSpace = int(v['semi-space-mb'], '--semi-space-mb', 0);
  if (v['no-memory-cap'] && semiSpace !== undefined)
    throw usageError('--no-memory-cap and --semi-space-mb contradict each other: give one.', usage);
  return {
    module: parsed.positionals[0]!,
    channels,
    concurrency: int(v.concurrency, '--concurrency'),
    batchSize: int(v['batch-size'], '--batch-size'),
    processes: int(v.processes, '--processes'),
    shutdownTimeoutMs: duration(v['shutdown-timeout'], '--shutdown-timeout') ?? 30_000,
    pollIntervalMs: poll === 0 ? false : poll,
    listenUrl: v['listen-url'],
    databaseUrl: v['database-url'],
    connectTimeoutMs: duration(v['connect-timeout'], '--connect-timeout'),
    maxRestarts: int(v['max-restarts'], '--max-restarts', 0) ?? 5,
    restartDelayMs: duration(v['restart-delay'], '--restart-delay') ?? 1000,
    json: v.json ?? false,
    logLevel: parseLogLevel(v['log-level'], usage),
    worker: v.worker ?? false,
    metricsPort: port(v['metrics-port']),
    metricsHost: v['metrics-host'] ?? '127.0.0.1',
    semiSpaceMb: v['no-memory-cap'] || semiSpace === 0 ? undefined : (semiSpace ?? DEFAULT_SEMI_SPACE_MB),
    childArgv,
  };
}
