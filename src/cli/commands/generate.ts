import { parseArgs } from 'node:util';
import { PgPubSubError } from '../../errors.ts';
import { generate } from '../../generate/generate.ts';
import { DEFAULT_SCHEMA } from '../../storage/notifications.ts';

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

/** Entry point of `drizzle-pgpubsub generate <args>`; returns the exit code. */
export async function run(argv: string[]): Promise<number> {
  let values: { config?: string | undefined; schema?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        schema: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new PgPubSubError('INVALID_OPTIONS', `${(error as Error).message}\n\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  await generate({
    ...(values.config !== undefined ? { config: values.config } : {}),
    ...(values.schema !== undefined ? { schema: values.schema } : {}),
  });
  return 0;
}
