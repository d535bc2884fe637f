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

/**
 * Logs a listener's events to `logger`; returns a function that stops. Processed notifications
 * are logged (debug) only if the logger says debug is enabled, so the hot path stays free.
 */
export function logListenerEvents(events: ListenerEvents, logger: ListenerLogger): () => void {
  const offs = [
    events.on('started', ({ channels }) => logger.info({ channels }, 'drizzle-pgpubsub listener started')),
    events.on('stopped', ({ aborted }) => logger.info({ aborted }, 'drizzle-pgpubsub listener stopped')),
    events.on('failed', ({ channel, id, attempt, error, retryAt }) => {
      if (retryAt === null) return; // the dead letter is logged by 'dead'
      logger.warn(
        { channel, id, attempt, retryAt: retryAt.toISOString(), err: error },
        `handler of "${channel}" failed; retrying`,
      );
    }),
    events.on('dead', ({ channel, id, attempts, error }) =>
      logger.error(
        { channel, id, attempts, err: error },
        `notification ${id} on "${channel}" is a dead letter`,
      ),
    ),
    events.on('error', ({ error, during }) => logger.error({ err: error, during }, `error during ${during}`)),
  ];
  if (logger.isLevelEnabled?.('debug') === true) {
    offs.push(
      events.on('processed', ({ channel, id, attempt, durationMs }) =>
        logger.debug({ channel, id, attempt, durationMs }, `processed notification ${id} on "${channel}"`),
      ),
    );
  }
  return () => {
    for (const off of offs) off();
  };
}
