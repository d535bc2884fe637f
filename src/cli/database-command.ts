import { type AdminConnection, openAdminConnection } from '../runtime/connect.ts';
import { DEFAULT_SCHEMA } from '../storage/notifications.ts';
import type { CliCommand, CommandOptions, CommandValues } from './command.ts';
import { resolveDatabaseUrl } from './database.ts';
import { parseDuration } from './parse.ts';

/** Options every database command takes (status, failed, retry, purge). */
export const DATABASE_OPTIONS = {
  'database-url': { type: 'string' },
  schema: { type: 'string' },
  'connect-timeout': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies CommandOptions;

/** Help lines of {@link DATABASE_OPTIONS}. */
export const COMMON_HELP = `  --database-url <url>     database URL (default: $DATABASE_URL)
  --schema <name>          pg schema of the notifications table (default ${DEFAULT_SCHEMA})
  --connect-timeout <dur>  give up when the database stays unreachable this long (default 10s)
  --json                   print JSON instead of text
  -h, --help               show this help`;

/** What a database command is made of; see {@link databaseCommand}. */
export interface DatabaseCommandSpec {
  usage: string;
  /** Options beside {@link DATABASE_OPTIONS}. */
  options: CommandOptions;
  /** Checks the options before connecting; throws a usage error. */
  validate?: (values: CommandValues) => void;
  /** The work, with an open admin connection; resolves to the exit code. */
  body: (values: CommandValues, admin: AdminConnection, schema: string) => Promise<number>;
}

/**
 * A command that works on the database (status, failed, retry, purge): validates its options, opens
 * the admin connection, runs `body` and closes the connection. Errors go to the command runner.
 */
export function databaseCommand(spec: DatabaseCommandSpec): CliCommand {
  return {
    usage: spec.usage,
    options: { ...DATABASE_OPTIONS, ...spec.options },
    async run({ values }) {
      spec.validate?.(values);
      const schema = (values.schema as string | undefined) ?? DEFAULT_SCHEMA;
      const timeout = values['connect-timeout'] as string | undefined;
      let admin: AdminConnection | undefined;
      try {
        admin = await openAdminConnection({
          url: resolveDatabaseUrl(values['database-url'] as string | undefined),
          schema,
          connectTimeoutMs:
            timeout === undefined ? 10_000 : parseDuration(timeout, '--connect-timeout', spec.usage),
        });
        return await spec.body(values, admin, schema);
      } finally {
        await admin?.close();
      }
    },
  };
}
