import { purgeFailed } from '../../dead-letters.ts';
import { formatDuration } from '../../duration.ts';
import { COMMON_HELP, databaseCommand } from '../database-command.ts';
import { EXIT, usageError } from '../exit-codes.ts';
import { plural } from '../format.ts';
import { parseDuration } from '../parse.ts';

const purgeUsage = `Usage: drizzle-pgpubsub purge --older-than <age> [--channel <name>] [options]

Deletes failed notifications (dead letters) that failed more than <age> ago
(e.g. 7d, 12h; 0 deletes every failed notification). Pending work is never touched.

Options:
  --older-than <age>       required: 30m, 12h, 7d… (0: all)
  --channel <name>         only this channel
${COMMON_HELP}`;

/** `drizzle-pgpubsub purge`. */
export const command = databaseCommand({
  usage: purgeUsage,
  options: { 'older-than': { type: 'string' }, channel: { type: 'string' } },
  body: async (values, { db }, schema) => {
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
  validate: (values) => {
    if (values['older-than'] === undefined) {
      throw usageError(
        'purge needs --older-than <age>, e.g. --older-than 7d (0 deletes all failed).',
        purgeUsage,
      );
    }
    parseDuration(values['older-than'] as string, '--older-than', purgeUsage);
  },
});
