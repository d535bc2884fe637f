import { errorCodes } from '../errors.ts';

/** Codes that say the connection itself is gone. */
const LOST = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'CONNECT_TIMEOUT',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  '57P01', // admin_shutdown (pg_terminate_backend, server stop)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
]);

/** Codes of failures that may go away by themselves: {@link LOST}, plus a server not there yet. */
const TRANSIENT = new Set([
  ...LOST,
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOENT', // unix socket not there yet
  '53300', // too_many_connections
  '08000',
  '08001',
  '08004',
  '08006',
]);

/** True for errors that may go away by themselves (server down, starting, overloaded, network). */
export function isTransientConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TRANSIENT.has(code);
}

/**
 * True when `error` (or one of its causes) says the connection itself is gone. Its transaction is
 * then already rolled back by the server, and nothing more should be sent on it: postgres.js may
 * never answer a query queued on a connection that was cut (porsager/postgres#1208).
 */
export function isConnectionLost(error: unknown): boolean {
  for (const code of errorCodes(error)) {
    if (LOST.has(code) || code.startsWith('08')) return true;
  }
  return false;
}

/**
 * True when the server closed the session because it sat idle in a transaction for longer than
 * `idle_in_transaction_session_timeout` (SQLSTATE 25P03, FATAL), itself or as a cause.
 */
export function isIdleInTransactionTimeout(error: unknown): boolean {
  for (const code of errorCodes(error)) if (code === '25P03') return true;
  return false;
}
