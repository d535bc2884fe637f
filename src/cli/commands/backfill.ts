import { resolve } from 'node:path';
import { type BackfillProgress, type BackfillResult, backfill } from '../../backfill.ts';
import { isTriggerChannel } from '../../channel.ts';
import { formatDuration } from '../../duration.ts';
import { PgPubSubError } from '../../errors.ts';
import { importSchemaFiles, loadDrizzleConfig } from '../../generate/load-config.ts';
import { collectChannels } from '../../generate/plan.ts';
import type { CliCommand } from '../command.ts';
import { COMMON_HELP, databaseCommand } from '../database-command.ts';
import { EXIT, usageError } from '../exit-codes.ts';
import { plural } from '../format.ts';

const backfillUsage = `Usage: drizzle-pgpubsub backfill <channel> [--where <sql>] [options]

Writes one 'snapshot' event per existing row of a trigger channel's table, in short
transactions of --batch-size rows paged by primary key; listeners handle them like
any event (event.op === 'snapshot', event.new = the row). Progress is stored in the
database: after a crash or Ctrl-C, run the same command again to resume.
Channels are read from the schema files of your drizzle config, like generate.

Options:
  --where <sql>            only rows matching this SQL condition (e.g. "status = 'published'")
  --batch-size <n>         rows per transaction (default 1000)
  --restart                discard an unfinished run's progress and start from the first row
  -c, --config <file>      drizzle config (default: drizzle.config.{ts,js,mjs,cjs} here)
${COMMON_HELP}`;

function batchSizeOf(values: Record<string, unknown>): number | undefined {
  const raw = values['batch-size'] as string | undefined;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1)
    throw usageError(`--batch-size must be a positive integer, got ${JSON.stringify(raw)}.`, backfillUsage);
  return n;
}

/** A one-line progress bar on a TTY, redrawn in place on stderr. */
function progressBar(stream: NodeJS.WriteStream): (p: BackfillProgress) => void {
  return ({ rows, total }) => {
    const ratio = total > 0 ? Math.min(1, rows / total) : 1;
    const width = 30;
    const filled = Math.round(ratio * width);
    stream.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(ratio * 100)}% ${rows}/${total} rows`,
    );
  };
}

function summary(result: BackfillResult): string {
  const took = formatDuration(result.durationMs);
  const rate = result.durationMs > 0 ? Math.round((result.rows / result.durationMs) * 1000) : result.rows;
  const what = `${plural(result.rows, 'snapshot event')} in ${plural(result.pages, 'transaction')}, ${took} (${rate} rows/s)`;
  if (!result.finished) {
    return `Stopped backfill of channel "${result.channel}" after ${what}; ${result.totalRows} rows so far. Run the same command to resume.`;
  }
  const resumed = result.resumed ? `, resumed: ${result.totalRows} rows in the whole run` : '';
  return `Backfilled channel "${result.channel}": ${what}${resumed}.`;
}

function backfillCommand(name: string): CliCommand {
  return databaseCommand({
    usage: backfillUsage,
    options: {
      where: { type: 'string' },
      'batch-size': { type: 'string' },
      restart: { type: 'boolean' },
      config: { type: 'string', short: 'c' },
    },
    validate: (values) => void batchSizeOf(values),
    body: async (values, { db }, schema) => {
      const config = await loadDrizzleConfig({
        cwd: process.cwd(),
        config: values.config as string | undefined,
      });
      const found = collectChannels(importSchemaFiles(config.schemaFiles, process.cwd()), schema);
      const match = found.find((f) => f.channel.name === name);
      if (!match) {
        const known = found.filter((f) => isTriggerChannel(f.channel)).map((f) => f.channel.name);
        throw new PgPubSubError(
          'UNKNOWN_CHANNEL',
          `No channel named "${name}" is exported from the schema files of ${resolve(config.path)}. Trigger channels: ${known.length ? known.join(', ') : 'none'}.`,
        );
      }
      if (!isTriggerChannel(match.channel)) {
        throw new PgPubSubError(
          'INVALID_CHANNEL',
          `Channel "${name}" is a custom channel: only trigger channels (triggerChannel()) watch a table to backfill.`,
        );
      }
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const tty = !values.json && process.stderr.isTTY === true;
      const batchSize = batchSizeOf(values);
      const where = values.where as string | undefined;
      try {
        const result = await backfill(db, match.channel, {
          schema,
          signal: controller.signal,
          ...(batchSize !== undefined ? { batchSize } : {}),
          ...(where !== undefined ? { where } : {}),
          ...(values.restart === true ? { restart: true } : {}),
          ...(tty ? { onProgress: progressBar(process.stderr) } : {}),
        });
        if (tty) process.stderr.write('\n');
        console.log(values.json ? JSON.stringify(result) : summary(result));
        return result.finished ? EXIT.ok : EXIT.failure;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    },
  });
}

/** `drizzle-pgpubsub backfill <channel>`. */
export const command: CliCommand = {
  usage: backfillUsage,
  options: backfillCommand('').options,
  positionals: true,
  async run(args) {
    const [name, ...extra] = args.positionals;
    if (name === undefined || extra.length > 0) {
      throw usageError(
        name === undefined
          ? 'backfill needs the name of a trigger channel.'
          : `backfill takes one channel, got ${args.positionals.length}.`,
        backfillUsage,
      );
    }
    return backfillCommand(name).run(args);
  },
};
