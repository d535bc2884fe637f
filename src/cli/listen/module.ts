import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createJiti } from 'jiti';
import { PgPubSubError, pgPubSubErrorCode } from '../../errors.ts';
import type { Listener } from '../../index.ts';
import { errorMessage } from '../exit-codes.ts';
import type { Logger } from '../log.ts';

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
export type ListenerLike = Pick<Listener, 'start' | 'stop' | 'configure' | 'channels' | 'events'> &
  Partial<Pick<Listener, 'settings' | 'db'>>;

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
    const code = pgPubSubErrorCode(error);
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
  const candidates = [
    exports.sql,
    exports.client,
    db?.$client,
    (listener.db as { $client?: unknown } | undefined)?.$client,
  ];
  const out: Closable[] = [];
  for (const c of candidates) {
    if ((isPostgresJs(c) || isPool(c)) && !out.includes(c)) out.push(c);
  }
  return out;
}

export async function closeClients(clients: Closable[], log: Logger): Promise<void> {
  await Promise.all(
    clients.map(async (c) => {
      try {
        if (isPostgresJs(c)) await c.end({ timeout: 5 });
        else await (c as { end(): Promise<unknown> }).end();
      } catch (error) {
        log.warn({ err: error }, 'closing a database client failed');
      }
    }),
  );
}
