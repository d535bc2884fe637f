import { countFailed, listFailed } from '../../dead-letters.ts';
import { COMMON_HELP, databaseCommand } from '../database-command.ts';
import { EXIT } from '../exit-codes.ts';
import { firstLine, formatTable, plural } from '../format.ts';
import { parsePositiveInt } from '../parse.ts';

const failedUsage = `Usage: drizzle-pgpubsub failed [--channel <name>] [--limit <n>] [options]

Lists failed notifications (dead letters), most recently failed first, with their last error.

Options:
  --channel <name>         only this channel
  --limit <n>              at most n rows (default 50)
${COMMON_HELP}`;

/** `drizzle-pgpubsub failed`. */
export const command = databaseCommand({
  usage: failedUsage,
  options: { channel: { type: 'string' }, limit: { type: 'string' } },
  body: async (values, { db }, schema) => {
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
        priority: r.priority,
        dedupKey: r.dedupKey,
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
    // Job columns only when some row has a dedup key or a priority: plain output stays as it was.
    const jobs = rows.some((r) => r.dedupKey !== null || r.priority !== 0);
    console.log(
      formatTable(
        ['id', 'channel', 'attempts', ...(jobs ? ['key', 'priority'] : []), 'failed at', 'last error'],
        rows.map((r) => [
          String(r.id),
          r.channel,
          r.attempts,
          ...(jobs ? [r.dedupKey ?? '', r.priority] : []),
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
});
