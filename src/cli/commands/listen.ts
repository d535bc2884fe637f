import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createJiti } from 'jiti';
import { PgPubSubError } from '../../errors.ts';
import { connectWithRetry, databaseTarget, resolveDatabaseUrl } from '../database.ts';
import { supervise } from '../listen/supervisor.ts';
import {
  createLogger,
  EXIT,
  errorCode,
  errorFields,
  errorMessage,
  exitCodeFor,
  formatDuration,
  type Logger,
  parseDuration,
  parseLogLevel,
  parsePositiveInt,
  printFatal,
  usageError,
} from '../log.ts';

/** Help text of `drizzle-pgpubsub listen`. */
export const usage = `Usage: drizzle-pgpubsub listen <module> [options]

Loads <module> (TypeScript or JavaScript, no build step), which exports a listener
(\`export const listener = createListener(db).on(...)\`, or a default export), and runs
it until SIGTERM or SIGINT: then it stops claiming, lets in-flight handlers finish
(up to --shutdown-timeout), closes the module's database client and exits 0.
A second signal exits at once (unfinished handlers roll back; nothing is lost).

Options:
  --channels <a,b>          handle only these channels (default: all of the listener's)
  --concurrency <n>         claim transactions at once per process
  --batch-size <n>          notifications per claim transaction
  --processes <n>           run n worker processes under a supervisor that restarts
                            crashed workers and forwards SIGTERM/SIGINT
  --shutdown-timeout <dur>  how long to wait for in-flight handlers (default 30s)
  --poll-interval <dur>     safety sweep interval; 0 disables (default: the listener's)
  --listen-url <url>        separate session-mode URL for LISTEN (e.g. past PgBouncer)
  --database-url <url>      database URL (default: $DATABASE_URL); the module reads
                            process.env.DATABASE_URL, which this sets
  --connect-timeout <dur>   give up when the database stays unreachable this long
                            (default: keep retrying)
  --max-restarts <n>        with --processes: consecutive crashes of one worker
                            before giving up (default 5)
  --restart-delay <dur>     with --processes: first restart delay, doubled per crash
                            up to 30s (default 1s)
  --json                    log JSON lines instead of text
  --log-level <level>       debug | info | warn | error (default info)
  -h, --help                show this help

Durations: 500ms, 30s, 5m, 1h (a plain number is milliseconds).
Exit codes: 0 stopped cleanly, 1 failure, 2 bad options, 78 configuration error
(module, exports, DATABASE_URL, missing table): restarting will not help.`;

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
  help: boolean;
}

const OPTIONS = {
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
  help: { type: 'boolean', short: 'h' },
} as const;

/** Options only the supervisor uses; workers get every other argument unchanged. */
const SUPERVISOR_ONLY = new Set(['processes', 'max-restarts', 'restart-delay']);

/** Parses the arguments of `listen`; throws INVALID_OPTIONS (exit 2) with the help text. */
export function parseListenArgs(argv: string[]): ListenArgs & { childArgv: string[] } {
  const parse = () => {
    try {
      return parseArgs({ args: argv, options: OPTIONS, tokens: true, allowPositionals: true, strict: true });
    } catch (error) {
      throw usageError((error as Error).message, usage);
    }
  };
  const parsed = parse();
  const v = parsed.values;
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
  if (v.help) return { ...emptyArgs(), help: true, childArgv };
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
  const channels = v.channels
    ?.split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  if (channels !== undefined && channels.length === 0)
    throw usageError('--channels needs at least one channel name.', usage);
  const poll = duration(v['poll-interval'], '--poll-interval');
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
    help: false,
    childArgv,
  };
}

function emptyArgs(): ListenArgs {
  return {
    module: '',
    channels: undefined,
    concurrency: undefined,
    batchSize: undefined,
    processes: undefined,
    shutdownTimeoutMs: 30_000,
    pollIntervalMs: undefined,
    listenUrl: undefined,
    databaseUrl: undefined,
    connectTimeoutMs: undefined,
    maxRestarts: 5,
    restartDelayMs: 1000,
    json: false,
    logLevel: 'info',
    worker: false,
    help: false,
  };
}

/** Extra time after --shutdown-timeout before the process exits regardless. */
const STOP_GRACE_MS = 5000;

const EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'];

/** Resolves the module path (with or without extension, or a folder's index); MODULE_NOT_FOUND if none. */
export function resolveModulePath(spec: string, cwd: string = process.cwd()): string {
  const base = resolve(cwd, spec);
  const candidates = [
    base,
    ...EXTENSIONS.map((ext) => base + ext),
    ...EXTENSIONS.map((ext) => join(base, `index${ext}`)),
  ];
  const found = candidates.find((path) => existsSync(path) && statSync(path).isFile());
  if (found) return found;
  throw new PgPubSubError(
    'MODULE_NOT_FOUND',
    `listener module ${JSON.stringify(spec)} not found (looked for ${base}). Pass the path of the file that exports your listener, e.g. drizzle-pgpubsub listen ./src/listeners.ts`,
  );
}

/** The parts of a Listener the CLI uses; duck-typed so a listener from another copy of the package works. */
export interface ListenerLike {
  on: (...args: any[]) => unknown;
  start(): Promise<unknown>;
  stop(options?: { timeoutMs?: number }): Promise<void>;
  configure(options: Record<string, unknown>): unknown;
  readonly channels?: string[];
  events: { on(name: string, fn: (payload: any) => void): unknown };
}

/** True when `value` looks like a Listener made by `createListener()` (any copy of the package). */
export function isListenerLike(value: unknown): value is ListenerLike {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, any>;
  return (
    ['on', 'start', 'stop', 'configure'].every((k) => typeof v[k] === 'function') &&
    typeof v.events === 'object' &&
    v.events !== null &&
    typeof v.events.on === 'function'
  );
}

/** Picks the listener from a module's exports: `listener`, else `default`, else the only Listener export. */
export function findListener(
  exports: Record<string, unknown>,
  shown: string,
): { name: string; listener: ListenerLike } {
  if (isListenerLike(exports.listener)) return { name: 'listener', listener: exports.listener };
  if (isListenerLike(exports.default)) return { name: 'default', listener: exports.default };
  const nested = exports.default as Record<string, unknown> | undefined;
  if (nested && typeof nested === 'object' && isListenerLike(nested.listener)) {
    return { name: 'listener', listener: nested.listener };
  }
  const found = Object.entries(exports).filter(([, value]) => isListenerLike(value));
  if (found.length === 1) return { name: found[0]![0], listener: found[0]![1] as ListenerLike };
  if (found.length > 1) {
    throw new PgPubSubError(
      'NO_LISTENER_EXPORT',
      `${shown} exports ${found.length} listeners (${found.map(([n]) => n).join(', ')}): export the one to run as \`listener\` or as the default export.`,
    );
  }
  const names = Object.keys(exports).filter((k) => k !== '__esModule');
  const hint =
    exports.listener !== undefined
      ? ' Its `listener` export is not a listener made by createListener().'
      : ` It exports ${names.length ? names.join(', ') : 'nothing'}.`;
  throw new PgPubSubError(
    'NO_LISTENER_EXPORT',
    `${shown} does not export a listener.${hint} Add \`export const listener = createListener(db).on(channel, handler)\` (or export it as default).`,
  );
}

/** Imports the user's module with jiti (TypeScript without a build step). */
export async function loadModule(path: string, shown: string): Promise<Record<string, unknown>> {
  try {
    const jiti = createJiti(import.meta.url);
    return (await jiti.import(path)) as Record<string, unknown>;
  } catch (error) {
    const code = errorCode(error);
    const message = `${shown}: ${errorMessage(error)}`;
    if (code) throw new PgPubSubError(code as 'MODULE_LOAD_FAILED', message, { cause: error });
    throw new PgPubSubError(
      'MODULE_LOAD_FAILED',
      `could not load ${shown}: ${errorMessage(error)}. Fix that error (--log-level debug prints the stack).`,
      { cause: error },
    );
  }
}

interface Closable {
  end(options?: { timeout?: number }): Promise<unknown>;
}
const isPostgresJs = (v: any): v is Closable =>
  typeof v === 'function' && typeof v.end === 'function' && typeof v.unsafe === 'function';
const isPool = (v: any): v is Closable => typeof v === 'object' && v !== null && typeof v.end === 'function';

/**
 * The database clients to close after the listener stopped: the module's `sql` or `client` export,
 * `db.$client` of its `db` export, and the client of the listener's own database. Deduplicated.
 */
export function clientsToClose(exports: Record<string, unknown>, listener: ListenerLike): Closable[] {
  const db = exports.db as { $client?: unknown } | undefined;
  const candidates = [exports.sql, exports.client, db?.$client, (listener as any).db?.$client];
  const out: Closable[] = [];
  for (const c of candidates) {
    if ((isPostgresJs(c) || isPool(c)) && !out.includes(c)) out.push(c);
  }
  return out;
}

async function closeClients(clients: Closable[], log: Logger): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      try {
        if (isPostgresJs(c)) await c.end({ timeout: 5 });
        else await (c as { end(): Promise<unknown> }).end();
      } catch (error) {
        log.warn('closing a database client failed', errorFields(error));
      }
    }),
  );
}

/** Entry point of `drizzle-pgpubsub listen <module> [options]`; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseListenArgs>;
  try {
    args = parseListenArgs(argv);
  } catch (error) {
    printFatal(error, argv.includes('--json'));
    return exitCodeFor(error);
  }
  if (args.help) {
    console.log(usage);
    return EXIT.ok;
  }
  if (args.processes !== undefined && !args.worker) return runSupervisor(args);
  return exit(await runListener(args));
}

function exit(code: number): never {
  process.exit(code);
}

async function runSupervisor(args: ReturnType<typeof parseListenArgs>): Promise<never> {
  const log = createLogger({
    level: args.logLevel,
    json: args.json,
    bound: { role: 'supervisor', pid: process.pid },
  });
  try {
    // Fail fast on what every worker would fail on, instead of N identical errors.
    resolveDatabaseUrl(args.databaseUrl);
    resolveModulePath(args.module);
  } catch (error) {
    printFatal(error, args.json);
    return exit(exitCodeFor(error));
  }
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot find the CLI script to fork');
  const code = await supervise({
    processes: args.processes!,
    script,
    childArgv: ['listen', ...args.childArgv],
    log,
    shutdownTimeoutMs: args.shutdownTimeoutMs,
    maxRestarts: args.maxRestarts,
    restartDelayMs: args.restartDelayMs,
  });
  return exit(code);
}

/** Signals, supervisor requests and IPC loss, turned into one abort with a reason. */
function shutdownSignal(log: Logger, worker: boolean): { signal: AbortSignal; reason: () => string } {
  const controller = new AbortController();
  let reason = '';
  const stop = (why: string) => {
    if (controller.signal.aborted) return;
    reason = why;
    controller.abort();
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // Only a second *signal* forces: the supervisor's request and a signal from the service manager
    // (systemd sends SIGTERM to the whole group) are one shutdown.
    if (++signals > 1) {
      log.warn(
        `${signal} again: exiting now; unfinished handlers roll back and their notifications stay pending`,
      );
      process.exit(EXIT.failure);
    }
    stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (worker && process.send) {
    process.on('message', (message: { type?: string } | null) => {
      if (message?.type === 'shutdown') stop('the supervisor asked');
    });
    process.on('disconnect', () => {
      if (!controller.signal.aborted) log.warn('the supervisor is gone (IPC channel closed): stopping');
      stop('supervisor gone');
    });
  }
  return { signal: controller.signal, reason: () => reason };
}

async function runListener(args: ListenArgs): Promise<number> {
  const workerIndex = args.worker ? process.env.PGPUBSUB_WORKER_INDEX : undefined;
  const log = createLogger({
    level: args.logLevel,
    json: args.json,
    bound: { worker: workerIndex === undefined ? undefined : Number(workerIndex), pid: process.pid },
  });
  const shutdown = shutdownSignal(log, args.worker);
  process.on('uncaughtException', (error) => {
    log.error(`uncaught exception, exiting: ${errorMessage(error)}`, {
      stack: log.json ? (error as Error)?.stack : undefined,
    });
    if (!log.json) process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(EXIT.failure);
  });
  let listener: ListenerLike;
  let exports: Record<string, unknown>;
  let url: string;
  try {
    url = resolveDatabaseUrl(args.databaseUrl);
    process.env.DATABASE_URL = url;
    process.env.PGAPPNAME ??=
      workerIndex === undefined ? 'drizzle-pgpubsub listen' : `drizzle-pgpubsub worker ${workerIndex}`;
    const path = resolveModulePath(args.module);
    exports = await loadModule(path, args.module);
    listener = findListener(exports, args.module).listener;
    const overrides: Record<string, unknown> = {
      channels: args.channels,
      concurrency: args.concurrency,
      batchSize: args.batchSize,
      pollIntervalMs: args.pollIntervalMs,
      listenUrl: args.listenUrl,
    };
    listener.configure(Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)));
    void listener.channels; // validates --channels against the registered handlers
  } catch (error) {
    // Everything up to here is configuration (environment, module, its exports and options):
    // restarting cannot fix it, so the supervisor must not try.
    printFatal(error, args.json);
    const cause = (error as { cause?: unknown }).cause;
    if (args.logLevel === 'debug' && cause instanceof Error)
      log.debug(`caused by: ${cause.stack ?? cause.message}`);
    return EXIT.config;
  }
  if (shutdown.signal.aborted) return EXIT.ok;

  try {
    const probe = await connectWithRetry(url, {
      log,
      signal: shutdown.signal,
      ...(args.connectTimeoutMs === undefined ? {} : { timeoutMs: args.connectTimeoutMs }),
    });
    if (!probe) return EXIT.ok; // stopped while waiting for the database
    await probe.end({ timeout: 1 });
  } catch (error) {
    printFatal(error, args.json);
    return exitCodeFor(error);
  }

  const counts = { processed: 0, retried: 0, dead: 0, aborted: 0 };
  const startedAt = Date.now();
  listener.events.on(
    'processed',
    (e: { channel: string; id: string; attempt: number; durationMs: number }) => {
      counts.processed++;
      if (log.enabled('debug')) {
        log.debug(`processed ${e.channel} #${e.id}`, { attempt: e.attempt, ms: Math.round(e.durationMs) });
      }
    },
  );
  listener.events.on(
    'failed',
    (e: { channel: string; id: string; attempt: number; error: unknown; retryAt: Date | null }) => {
      if (e.retryAt === null) return; // reported by 'dead'
      counts.retried++;
      log.warn(
        `handler failed on ${e.channel} #${e.id} (attempt ${e.attempt}): ${errorMessage(e.error)}; retrying in ${formatDuration(Math.max(0, e.retryAt.getTime() - Date.now()))}`,
        { channel: e.channel, id: e.id, attempt: e.attempt, retryAt: e.retryAt },
      );
    },
  );
  listener.events.on('dead', (e: { channel: string; id: string; attempts: number; error: unknown }) => {
    counts.dead++;
    log.error(
      `${e.channel} #${e.id} failed for good after ${e.attempts} attempt${e.attempts === 1 ? '' : 's'}: ${errorMessage(e.error)} (kept as failed; see \`drizzle-pgpubsub failed\`)`,
      { channel: e.channel, id: e.id, attempts: e.attempts },
    );
  });
  listener.events.on('error', (e: { error: unknown; during: string }) => {
    log.error(`error during ${e.during}: ${errorMessage(e.error)}`, { code: errorFields(e.error).code });
  });
  listener.events.on('stopped', (e: { aborted: number }) => {
    counts.aborted = e.aborted;
  });

  try {
    await listener.start();
  } catch (error) {
    printFatal(error, args.json);
    await closeClients(clientsToClose(exports, listener), log);
    return exitCodeFor(error);
  }
  const options = (listener as { options?: { concurrency?: number; batchSize?: number } }).options;
  log.info(`listening on ${(listener.channels ?? []).join(', ')}`, {
    concurrency: args.concurrency ?? options?.concurrency,
    batchSize: args.batchSize ?? options?.batchSize,
    database: databaseTarget(url),
  });
  process.send?.({ type: 'ready', pid: process.pid });

  if (!shutdown.signal.aborted) {
    await new Promise((resolve) => shutdown.signal.addEventListener('abort', resolve, { once: true }));
  }
  log.info(
    `stopping (${shutdown.reason()}): no new claims; waiting up to ${formatDuration(args.shutdownTimeoutMs)} for in-flight handlers`,
  );
  try {
    // stop() aborts handlers at the timeout; one that ignores its abort signal could still hold it up.
    const grace = args.shutdownTimeoutMs + STOP_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      listener.stop({ timeoutMs: args.shutdownTimeoutMs }).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), grace);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped) {
      log.warn(
        `handlers still running ${formatDuration(grace)} after the stop request (they ignore event.signal): exiting; their transactions roll back and their notifications stay pending`,
      );
      return EXIT.ok;
    }
  } catch (error) {
    log.error(`stopping the listener failed: ${errorMessage(error)}`);
    return EXIT.failure;
  }
  await closeClients(clientsToClose(exports, listener), log);
  log.info(
    `stopped after ${formatDuration(Date.now() - startedAt)}: ${counts.processed} processed, ${counts.retried} failed attempts to retry, ${counts.dead} failed for good${counts.aborted ? `, ${counts.aborted} in-flight claim(s) aborted and left pending` : ''}`,
  );
  return EXIT.ok;
}
