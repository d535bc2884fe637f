import { parseArgs } from 'node:util';
import { countFailed, listFailed, purgeFailed, retryFailedByChannel } from '../../admin.ts';
import { DEFAULT_SCHEMA } from '../../storage/notifications.ts';
import { type AdminConnection, openAdminConnection } from '../database.ts';
import {
  EXIT,
  exitCodeFor,
  formatDuration,
  formatTable,
  parseDuration,
  parsePositiveInt,
  printFatal,
  usageError,
} from '../log.ts';

/** Same shape as `CliCommand` in main.ts (not imported: main.ts is the entry point). */
interface CliCommand {
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Options every database command takes (status, failed, retry, purge). */
export const COMMON_OPTIONS = {
  'database-url': { type: 'string' },
  schema: { type: 'string' },
  'connect-timeout': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Help lines of {@link COMMON_OPTIONS}. */
export const COMMON_HELP = `  --database-url <url>     database URL (default: $DATABASE_URL)
  --schema <name>          pg schema of the notifications table (default ${DEFAULT_SCHEMA})
  --connect-timeout <dur>  give up when the database stays unreachable this long (default 10s)
  --json                   print JSON instead of text
  -h, --help               show this help`;

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * Parses a database command's arguments, opens the admin connection, runs `body` and maps errors to
 * exit codes (2 bad options, 78 configuration, 1 other failures).
 */
export async function runDatabaseCommand(
  argv: string[],
  usage: string,
  options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>,
  body: (values: Values, admin: AdminConnection, schema: string) => Promise<number>,
  validate: (values: Values) => void = () => {},
): Promise<number> {
  let values: Values;
  try {
    values = parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      strict: true,
      allowPositionals: false,
    }).values as Values;
  } catch (error) {
    printFatal(usageError((error as Error).message, usage), argv.includes('--json'));
    return EXIT.usage;
  }
  const json = values.json === true;
  if (values.help) {
    console.log(usage);
    return EXIT.ok;
  }
  let admin: AdminConnection | undefined;
  try {
    validate(values);
    const schema = (values.schema as string | undefined) ?? DEFAULT_SCHEMA;
    const timeout = values['connect-timeout'] as string | undefined;
    admin = await openAdminConnection({
      databaseUrl: values['database-url'] as string | undefined,
      schema,
      connectTimeoutMs: timeout === undefined ? 10_000 : parseDuration(timeout, '--connect-timeout', usage),
    });
    return await body(values, admin, schema);
  } catch (error) {
    printFatal(error, json);
    return exitCodeFor(error);
  } finally {
    await admin?.close();
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const firstLine = (text: string | null, max = 100) => {
  const line = (text ?? '').split('\n')[0] ?? '';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
};

const failedUsage = `Usage: drizzle-pgpubsub failed [--channel <name>] [--limit <n>] [options]

Lists failed notifications (dead letters), most recently failed first, with their last error.

Options:
  --channel <name>         only this channel
  --limit <n>              at most n rows (default 50)
${COMMON_HELP}`;

/** `drizzle-pgpubsub failed`. */
export const failed: CliCommand = {
  usage: failedUsage,
  run: (argv) =>
    runDatabaseCommand(
      argv,
      failedUsage,
      { channel: { type: 'string' }, limit: { type: 'string' } },
      async (values, { db }, schema) => {
        const channel = values.channel as string | undefined;
        const limitText = values.limit as string | undefined;
        const limit = limitText === undefined ? 50 : parsePositiveInt(limitText, '--limit', failedUsage);
        const filter = { schema, ...(channel === undefined ? {} : { channel }) };
        const rows = await listFailed(db, { ...filter, limit });
        const total = rows.length < limit ? rows.length : await countFailed(db, filter);
        if (values.json) {
          const out = rows.map((r) => ({
            id: String(r.id),
            channel: r.channel,
            op: r.op,
            attempts: r.attempts,
            failedAt: r.failedAt,
            createdAt: r.createdAt,
            lastError: r.lastError,
            context: r.context,
            payload: r.payload,
          }));
          console.log(JSON.stringify({ total, failed: out }, null, 2));
          return EXIT.ok;
        }
        if (rows.length === 0) {
          console.log(`No failed notifications${channel === undefined ? '' : ` on ${channel}`}.`);
          return EXIT.ok;
        }
        console.log(
          formatTable(
            ['id', 'channel', 'attempts', 'failed at', 'last error'],
            rows.map((r) => [
              String(r.id),
              r.channel,
              r.attempts,
              r.failedAt?.toISOString() ?? '',
              firstLine(r.lastError),
            ]),
          ),
        );
        console.log(
          `\n${plural(total, 'failed notification')}${total > rows.length ? ` (showing the ${rows.length} most recent; use --limit)` : ''}. Re-queue with \`drizzle-pgpubsub retry --id <id>\`, \`--channel <name>\` or \`--all\`; delete with \`drizzle-pgpubsub purge --older-than <age>\`.`,
        );
        return EXIT.ok;
      },
    ),
};

const retryUsage = `Usage: drizzle-pgpubsub retry (--id <id>... | --channel <name> | --all) [options]

Re-queues failed notifications: back to pending, attempts reset, due now. Running
listeners are woken with a NOTIFY on each affected channel.

Options:
  --id <id>                a notification id; repeat or comma-separate for several
  --channel <name>         every failed notification of this channel
  --all                    every failed notification
${COMMON_HELP}`;

function retrySelector(values: Values): { ids: string[] } | { channel: string } | { all: true } {
  const ids = ((values.id as string[] | undefined) ?? []).flatMap((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const given = [ids.length > 0, values.channel !== undefined, values.all === true].filter(Boolean).length;
  if (given !== 1)
    throw usageError('retry needs exactly one of --id <id>, --channel <name> or --all.', retryUsage);
  for (const id of ids) {
    if (!/^\d+$/.test(id))
      throw usageError(`--id must be a notification id (an integer), got ${JSON.stringify(id)}.`, retryUsage);
  }
  if (ids.length > 0) return { ids };
  if (values.channel !== undefined) return { channel: values.channel as string };
  return { all: true };
}

/** `drizzle-pgpubsub retry`. */
export const retry: CliCommand = {
  usage: retryUsage,
  run: (argv) =>
    runDatabaseCommand(
      argv,
      retryUsage,
      { id: { type: 'string', multiple: true }, channel: { type: 'string' }, all: { type: 'boolean' } },
      async (values, { db }, schema) => {
        const selector = retrySelector(values);
        const byChannel = await retryFailedByChannel(db, selector, { schema });
        const count = Object.values(byChannel).reduce((a, b) => a + b, 0);
        if (values.json) {
          console.log(JSON.stringify({ retried: count, byChannel }));
        } else if (count === 0) {
          console.log('Nothing to retry: no failed notification matches.');
        } else {
          const detail = Object.entries(byChannel)
            .map(([c, n]) => `${c}: ${n}`)
            .join(', ');
          console.log(
            `Re-queued ${plural(count, 'failed notification')} (${detail}); listeners were notified.`,
          );
        }
        if ('ids' in selector && count < selector.ids.length && !values.json) {
          console.log(`${plural(selector.ids.length - count, 'id')} matched no failed notification.`);
        }
        return EXIT.ok;
      },
      (values) => void retrySelector(values),
    ),
};

const purgeUsage = `Usage: drizzle-pgpubsub purge --older-than <age> [--channel <name>] [options]

Deletes failed notifications (dead letters) that failed more than <age> ago
(e.g. 7d, 12h; 0 deletes every failed notification). Pending work is never touched.

Options:
  --older-than <age>       required: 30m, 12h, 7d… (0: all)
  --channel <name>         only this channel
${COMMON_HELP}`;

/** `drizzle-pgpubsub purge`. */
export const purge: CliCommand = {
  usage: purgeUsage,
  run: (argv) =>
    runDatabaseCommand(
      argv,
      purgeUsage,
      { 'older-than': { type: 'string' }, channel: { type: 'string' } },
      async (values, { db }, schema) => {
        const olderThan = parseDuration(values['older-than'] as string, '--older-than', purgeUsage);
        const channel = values.channel as string | undefined;
        const count = await purgeFailed(db, {
          schema,
          olderThan,
          ...(channel === undefined ? {} : { channel }),
        });
        if (values.json) {
          console.log(JSON.stringify({ deleted: count }));
        } else {
          const age = olderThan === 0 ? '' : ` that failed more than ${formatDuration(olderThan)} ago`;
          console.log(
            `Deleted ${plural(count, 'failed notification')}${age}${channel === undefined ? '' : ` on ${channel}`}.`,
          );
        }
        return EXIT.ok;
      },
      (values) => {
        if (values['older-than'] === undefined) {
          throw usageError(
            'purge needs --older-than <age>, e.g. --older-than 7d (0 deletes all failed).',
            purgeUsage,
          );
        }
        parseDuration(values['older-than'] as string, '--older-than', purgeUsage);
      },
    ),
};
