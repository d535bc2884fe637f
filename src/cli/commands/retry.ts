import { retryFailedByChannel } from '../../dead-letters.ts';
import type { CommandValues } from '../command.ts';
import { COMMON_HELP, databaseCommand } from '../database-command.ts';
import { EXIT, usageError } from '../exit-codes.ts';
import { plural } from '../format.ts';

const retryUsage = `Usage: drizzle-pgpubsub retry (--id <id>... | --channel <name> | --all) [options]

Re-queues failed notifications: back to pending, attempts reset, due now. Running
listeners are woken with a NOTIFY on each affected channel.

Options:
  --id <id>                a notification id; repeat or comma-separate for several
  --channel <name>         every failed notification of this channel
  --all                    every failed notification
${COMMON_HELP}`;

function retrySelector(values: CommandValues): { ids: string[] } | { channel: string } | { all: true } {
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
export const command = databaseCommand({
  usage: retryUsage,
  options: { id: { type: 'string', multiple: true }, channel: { type: 'string' }, all: { type: 'boolean' } },
  body: async (values, { db }, schema) => {
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
      console.log(`Re-queued ${plural(count, 'failed notification')} (${detail}); listeners were notified.`);
    }
    if ('ids' in selector && count < selector.ids.length && !values.json) {
      console.log(`${plural(selector.ids.length - count, 'id')} matched no failed notification.`);
    }
    return EXIT.ok;
  },
  validate: (values) => void retrySelector(values),
});
