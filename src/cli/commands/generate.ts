import { generate } from '../../generate/generate.ts';
import { DEFAULT_SCHEMA } from '../../storage/notifications.ts';
import type { CliCommand } from '../command.ts';
import { EXIT } from '../exit-codes.ts';

/** Help text of `drizzle-pgpubsub generate`. */
export const usage = `Usage: drizzle-pgpubsub generate [--config <file>] [--schema <name>]

Writes one drizzle-kit migration into the \`out\` folder of your drizzle config: the
notifications storage on the first run, then whatever installs, replaces or drops the
triggers of the channels exported from your schema files. Writes nothing when all
channels are up to date. Apply it with \`drizzle-kit migrate\`.

Options:
  -c, --config <file>  drizzle config (default: drizzle.config.{ts,js,mjs,cjs} here)
      --schema <name>  pg schema of the notifications table
                       (default: the one recorded in earlier migrations, else ${DEFAULT_SCHEMA})
  -h, --help           show this help`;

/** `drizzle-pgpubsub generate`. */
export const command: CliCommand = {
  usage,
  options: { config: { type: 'string', short: 'c' }, schema: { type: 'string' } },
  async run({ values }) {
    const config = values.config as string | undefined;
    const schema = values.schema as string | undefined;
    await generate({
      ...(config !== undefined ? { config } : {}),
      ...(schema !== undefined ? { schema } : {}),
    });
    return EXIT.ok;
  },
};
