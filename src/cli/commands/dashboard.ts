/**
 * `drizzle-pgpubsub dashboard`: serves {@link createDashboard} over node:http until SIGINT / SIGTERM.
 * A {@link CliCommand} run by the CLI's one command runner.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDashboard, toNodeHandler } from '../../dashboard/index.ts';
import { type AdminConnection, openAdminConnection } from '../../runtime/connect.ts';
import { DEFAULT_SCHEMA } from '../../storage/notifications.ts';
import type { CliCommand, CommandValues } from '../command.ts';
import { resolveDatabaseUrl } from '../database.ts';
import { EXIT, usageError } from '../exit-codes.ts';
import { createLogger } from '../log.ts';
import { parseDuration, parsePositiveInt } from '../parse.ts';

/** Environment variable holding the access token (preferred over `--token`, which `ps` shows). */
export const TOKEN_ENV = 'PGPUBSUB_DASHBOARD_TOKEN';

/** Help text of `drizzle-pgpubsub dashboard`. */
export const usage = `Usage: drizzle-pgpubsub dashboard [--port 4000] [--host 127.0.0.1] [--token <t>] [--allow-writes] [options]

Serves a web dashboard: channels (pending / scheduled / failed / oldest age, throughput),
listeners connected, failed notifications with their error and payload; with
--allow-writes, retry and purge buttons. Read-only by default.

Options:
  --port <n>               port (default 4000; 0 picks a free one)
  --host <addr>            address to bind (default 127.0.0.1). Any address other than
                           127.0.0.1, ::1 or localhost requires a token
  --token <t>              access token, at least 16 characters (default: $${TOKEN_ENV};
                           prefer the variable: command lines are visible to other users).
                           Browsers log in once with it; API clients send
                           Authorization: Bearer <t>
  --allow-writes           enable retry and purge (requires a token)
  --base-path <path>       serve under this path prefix, e.g. /queue (behind a proxy)
  --database-url <url>     database URL (default: $DATABASE_URL)
  --schema <name>          pg schema of the notifications table (default ${DEFAULT_SCHEMA})
  --connect-timeout <dur>  give up when the database stays unreachable this long (default 10s)
  -h, --help               show this help

Generate a token with: export ${TOKEN_ENV}=$(openssl rand -hex 32)

Exit codes: 0 stopped by SIGINT/SIGTERM, 1 runtime failure (port in use, database
unreachable), 2 bad options, 78 configuration error (no DATABASE_URL, table missing).`;

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** `drizzle-pgpubsub dashboard`. */
export const command: CliCommand = {
  usage,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    token: { type: 'string' },
    'allow-writes': { type: 'boolean' },
    'base-path': { type: 'string' },
    'database-url': { type: 'string' },
    schema: { type: 'string' },
    'connect-timeout': { type: 'string' },
  },
  run: ({ values }) => serve(values),
};

/** Serves the dashboard until SIGINT / SIGTERM; resolves to the exit code. */
export async function serve(values: CommandValues, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let admin: AdminConnection | undefined;
  try {
    const host = (values.host as string | undefined) ?? '127.0.0.1';
    const port =
      values.port === undefined ? 4000 : parsePositiveInt(values.port as string, '--port', usage, 0);
    const token = (values.token as string | undefined) ?? (env[TOKEN_ENV] || undefined);
    const allowWrites = values['allow-writes'] === true;
    if (token === undefined && !isLoopback(host)) {
      throw usageError(
        `--host ${host} is reachable from other machines: set an access token (export ${TOKEN_ENV}=$(openssl rand -hex 32), or --token), or bind 127.0.0.1.`,
        usage,
      );
    }
    if (token === undefined && allowWrites) {
      throw usageError(
        `--allow-writes requires an access token: export ${TOKEN_ENV}=$(openssl rand -hex 32) (or --token).`,
        usage,
      );
    }
    if (token !== undefined && token.length < 16) {
      throw usageError('the access token must be at least 16 characters (openssl rand -hex 32).', usage);
    }
    const schema = (values.schema as string | undefined) ?? DEFAULT_SCHEMA;
    const basePath = (values['base-path'] as string | undefined) ?? '';
    const timeout = values['connect-timeout'] as string | undefined;
    admin = await openAdminConnection({
      url: resolveDatabaseUrl(values['database-url'] as string | undefined),
      schema,
      connectTimeoutMs: timeout === undefined ? 10_000 : parseDuration(timeout, '--connect-timeout', usage),
    });
    // The URL line below is the command's output (stdout); errors while serving are log lines (stderr).
    const log = createLogger({ write: (line) => process.stderr.write(`${line}\n`) });
    const dashboard = createDashboard(admin.db, {
      basePath,
      schema,
      allowWrites,
      logger: log,
      ...(token === undefined ? {} : { token }),
    });
    const server = createServer(toNodeHandler(dashboard, { logger: log }));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    console.log(
      `dashboard at http://${shown}:${address.port}${basePath || '/'} (${allowWrites ? 'writes enabled' : 'read-only'}${token === undefined ? ', no token: loopback only' : ', token required'}); Ctrl-C stops it`,
    );
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return EXIT.ok;
  } catch (error) {
    if (
      (error as { code?: unknown }).code === 'EADDRINUSE' ||
      (error as { code?: unknown }).code === 'EACCES'
    ) {
      process.stderr.write(`error: cannot listen: ${(error as Error).message}. Pick another --port.\n`);
      return EXIT.failure;
    }
    throw error;
  } finally {
    await admin?.close();
  }
}
