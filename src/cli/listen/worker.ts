import { formatDuration } from '../../duration.ts';
import type { ListenerOptions } from '../../index.ts';
import { connectWithRetry, databaseTarget } from '../../runtime/connect.ts';
import { isPgPool } from '../../runtime/drivers/node-postgres.ts';
import { waitAtMost } from '../../timeouts.ts';
import { resolveDatabaseUrl } from '../database.ts';
import { EXIT, errorMessage, exitCodeFor, printFatal } from '../exit-codes.ts';
import { createLogger, type Logger } from '../log.ts';
import type { ListenArgs } from './args.ts';
import { CAPPED_ENV } from './memory-cap.ts';
import {
  clientsToClose,
  closeClients,
  findListener,
  type ListenerLike,
  loadModule,
  resolveModulePath,
} from './module.ts';
import { answerMetricsRequests, loadPromClient, promMeter, serveMetrics } from './prometheus.ts';

/** Extra time after --shutdown-timeout before the process exits regardless. */
const STOP_GRACE_MS = 5000;

/**
 * Signals, requests of the parent process (a supervisor, or the `listen` that re-started this one with
 * a memory cap) and IPC loss, turned into one abort with a reason.
 */
function shutdownSignal(log: Logger, child: boolean): { signal: AbortSignal; reason: () => string } {
  const controller = new AbortController();
  let reason = '';
  const stop = (why: string) => {
    if (controller.signal.aborted) return;
    reason = why;
    controller.abort();
  };
  let signals = 0;
  const force = (what: string) => {
    log.warn(
      { reason: what },
      `${what}: exiting now; unfinished handlers roll back and their notifications stay pending`,
    );
    process.exit(EXIT.failure);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    // Only a second *signal* forces: the supervisor's request and a signal from the service manager
    // (systemd sends SIGTERM to the whole group) are one shutdown.
    if (++signals > 1) force(`${signal} again`);
    stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (child && process.send) {
    process.on('message', (message: { type?: string; reason?: string } | null) => {
      if (message?.type === 'shutdown') stop(message.reason ?? 'the supervisor asked');
      else if (message?.type === 'force-exit')
        force(message.reason ? `${message.reason} again` : 'a second stop request');
    });
    process.on('disconnect', () => {
      if (!controller.signal.aborted) log.warn('the supervisor is gone (IPC channel closed): stopping');
      stop('supervisor gone');
    });
  }
  return { signal: controller.signal, reason: () => reason };
}

/** The listener options given on the command line (`--channels`, `--concurrency`, `--batch-size`…). */
export function listenerOverrides(args: ListenArgs): ListenerOptions {
  return {
    ...(args.channels === undefined ? {} : { channels: args.channels }),
    ...(args.concurrency === undefined ? {} : { concurrency: args.concurrency }),
    ...(args.batchSize === undefined ? {} : { batchSize: args.batchSize }),
    ...(args.pollIntervalMs === undefined ? {} : { pollIntervalMs: args.pollIntervalMs }),
    ...(args.listenUrl === undefined ? {} : { listenUrl: args.listenUrl }),
  };
}

/** Runs one listener process (a worker, or the only process) until a signal; resolves to the exit code. */
export async function runListener(args: ListenArgs): Promise<number> {
  const workerIndex = args.worker ? process.env.PGPUBSUB_WORKER_INDEX : undefined;
  const log = createLogger({
    level: args.logLevel,
    json: args.json,
    bound: { worker: workerIndex === undefined ? undefined : Number(workerIndex), pid: process.pid },
  });
  // A process `listen` re-started with a memory cap stops on its parent's request, like a worker.
  const capped = process.env[CAPPED_ENV] === 'fork';
  delete process.env[CAPPED_ENV];
  const shutdown = shutdownSignal(log, args.worker || capped);
  process.on('uncaughtException', (error) => {
    log.error({ err: error }, `uncaught exception, exiting: ${errorMessage(error)}`);
    if (!log.json) process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(EXIT.failure);
  });
  let listener: ListenerLike;
  let exports: Record<string, unknown>;
  let url: string;
  let metrics: import('prom-client').Registry | undefined;
  try {
    url = resolveDatabaseUrl(args.databaseUrl);
    process.env.DATABASE_URL = url;
    process.env.PGAPPNAME ??=
      workerIndex === undefined ? 'drizzle-pgpubsub listen' : `drizzle-pgpubsub worker ${workerIndex}`;
    const path = resolveModulePath(args.module);
    exports = await loadModule(path, args.module);
    listener = findListener(exports, args.module).listener;
    listener.configure(listenerOverrides(args));
    void listener.channels; // validates --channels against the registered handlers
    if (args.metricsPort !== undefined) {
      const client = await loadPromClient();
      metrics = new client.Registry();
      listener.configure({ metrics: { meter: promMeter(client, metrics) } });
      // Under a supervisor, it serves the workers' sum; a worker answers its requests over IPC.
      if (args.worker) answerMetricsRequests(metrics);
    }
  } catch (error) {
    // Everything up to here is configuration (environment, module, its exports and options):
    // restarting cannot fix it, so the supervisor must not try.
    printFatal(error, args.json);
    const cause = (error as { cause?: unknown }).cause;
    if (args.logLevel === 'debug' && cause instanceof Error)
      log.debug({ err: cause }, `caused by: ${cause.stack ?? cause.message}`);
    return EXIT.config;
  }
  if (shutdown.signal.aborted) return EXIT.ok;

  try {
    // The probe uses the driver of the module's database (node-postgres, or postgres.js), so an app
    // that installed only one of them runs under the CLI as it does on its own.
    const probe = await connectWithRetry(url, {
      driver: isPgPool((listener.db as { $client?: unknown } | undefined)?.$client) ? 'pg' : 'postgres-js',
      log,
      signal: shutdown.signal,
      ...(args.connectTimeoutMs === undefined ? {} : { timeoutMs: args.connectTimeoutMs }),
    });
    if (!probe) return EXIT.ok; // stopped while waiting for the database
    await probe.end(1);
    log.debug({ database: databaseTarget(url) }, `database ${databaseTarget(url)} reachable`);
  } catch (error) {
    printFatal(error, args.json);
    return exitCodeFor(error);
  }

  const counts = { processed: 0, retried: 0, dead: 0, aborted: 0 };
  const startedAt = Date.now();
  // The listener logs its own events (start, failed attempts, dead letters, errors, and processed
  // notifications at debug) through the CLI's pino-compatible logger: the library's one path. A
  // listener the module gave a logger of its own keeps it.
  const ownLogger = listener.settings?.logger !== undefined;
  if (!ownLogger) listener.configure({ logger: log });
  listener.events.on('processed', () => {
    counts.processed++;
  });
  listener.events.on('failed', (e: { retryAt: Date | null }) => {
    if (e.retryAt !== null) counts.retried++;
  });
  listener.events.on('dead', () => {
    counts.dead++;
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
  if (ownLogger) {
    // The module's logger has the listener's lines; the CLI's own log still says it runs.
    log.info(
      { channels: listener.channels },
      `listening on ${(listener.channels ?? []).join(', ')} (the listener logs to the module's logger)`,
    );
  }
  let server: import('node:http').Server | undefined;
  if (metrics && !args.worker) {
    const registry = metrics;
    try {
      server = await serveMetrics(args.metricsHost, args.metricsPort!, async () => ({
        body: await registry.metrics(),
        contentType: registry.contentType,
      }));
      log.info(
        { url: metricsUrl(args.metricsHost, server) },
        `metrics at ${metricsUrl(args.metricsHost, server)}`,
      );
    } catch (error) {
      log.error(
        { err: error },
        `cannot serve metrics on ${args.metricsHost}:${args.metricsPort}: ${errorMessage(error)}`,
      );
    }
  }
  process.send?.({ type: 'ready', pid: process.pid });

  if (!shutdown.signal.aborted) {
    await new Promise((resolve) => shutdown.signal.addEventListener('abort', resolve, { once: true }));
  }
  log.info(
    { reason: shutdown.reason() },
    `stopping (${shutdown.reason()}): no new claims; waiting up to ${formatDuration(args.shutdownTimeoutMs)} for in-flight handlers`,
  );
  try {
    // stop() aborts handlers at the timeout; one that ignores its abort signal could still hold it up.
    const grace = args.shutdownTimeoutMs + STOP_GRACE_MS;
    const stopped = await waitAtMost(listener.stop({ timeoutMs: args.shutdownTimeoutMs }), grace, {
      unref: false,
    });
    if (!stopped) {
      log.warn(
        { graceMs: grace },
        `handlers still running ${formatDuration(grace)} after the stop request (they ignore event.signal): exiting; their transactions roll back and their notifications stay pending`,
      );
      return EXIT.ok;
    }
  } catch (error) {
    log.error({ err: error }, `stopping the listener failed: ${errorMessage(error)}`);
    return EXIT.failure;
  }
  server?.close();
  await closeClients(clientsToClose(exports, listener), log);
  log.info(
    { ...counts, ms: Date.now() - startedAt },
    `stopped after ${formatDuration(Date.now() - startedAt)}: ${counts.processed} processed, ${counts.retried} failed attempts to retry, ${counts.dead} failed for good${counts.aborted ? `, ${counts.aborted} in-flight claim(s) aborted and left pending` : ''}`,
  );
  return EXIT.ok;
}

/** The URL a metrics server listens at (its real port when started on port 0). */
export function metricsUrl(host: string, server: import('node:http').Server): string {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`;
}
