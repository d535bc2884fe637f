import { formatDuration } from '../duration.ts';
import type { ListenerEvents } from '../events.ts';

/** One log method, pino's way: a fields object first, then the message. */
export type LogMethod = (fields: Record<string, unknown>, message: string) => void;

/**
 * A logger as the listener uses it: pino's signature (`logger.warn({ channel, id }, 'message')`),
 * which pino, and the CLI's own line logger, implement. bunyan and winston adapt in one line each.
 */
export interface ListenerLogger {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  /** pino's: when present and false for `debug`, processed notifications are not logged at all. */
  isLevelEnabled?(level: string): boolean;
}

/** The first line of an error's message. */
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0] ?? text;
}

/**
 * Logs a listener's events to `logger`; returns a function that stops. Processed notifications
 * are logged (debug) only if the logger says debug is enabled, so the hot path stays free.
 * `settings` adds fields to the start line (the listener's concurrency and batch size).
 */
export function logListenerEvents(
  events: ListenerEvents,
  logger: ListenerLogger,
  settings: () => Record<string, unknown> = () => ({}),
): () => void {
  const offs = [
    events.on('started', ({ channels }) =>
      logger.info({ ...settings(), channels }, `listening on ${channels.join(', ')}`),
    ),
    events.on('stopped', ({ aborted }) =>
      logger.info(
        { aborted },
        aborted > 0
          ? `listener stopped; ${aborted} in-flight claim(s) aborted and left pending`
          : 'listener stopped',
      ),
    ),
    events.on('failed', ({ channel, id, attempt, error, retryAt }) => {
      if (retryAt === null) return; // the dead letter is logged by 'dead'
      logger.warn(
        { channel, id, attempt, retryAt: retryAt.toISOString(), err: error },
        `handler failed on ${channel} #${id} (attempt ${attempt}): ${firstLine(error)}; retrying in ${formatDuration(Math.max(0, retryAt.getTime() - Date.now()))}`,
      );
    }),
    events.on('dead', ({ channel, id, attempts, error }) =>
      logger.error(
        { channel, id, attempts, err: error },
        `${channel} #${id} failed for good after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${firstLine(error)} (kept as failed: retry or purge it)`,
      ),
    ),
    events.on('error', ({ error, during }) =>
      logger.error({ err: error, during }, `error during ${during}: ${firstLine(error)}`),
    ),
  ];
  if (logger.isLevelEnabled?.('debug') === true) {
    offs.push(
      events.on('processed', ({ channel, id, attempt, durationMs }) =>
        logger.debug({ attempt, ms: Math.round(durationMs), channel, id }, `processed ${channel} #${id}`),
      ),
    );
  }
  return () => {
    for (const off of offs) off();
  };
}
