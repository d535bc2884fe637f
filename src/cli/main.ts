#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** What every command file under `src/cli/` exports. */
export interface CliCommand {
  /** Help text, printed for `drizzle-pgpubsub <command> --help` by the command itself. */
  usage: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/**
 * The commands, loaded lazily so `--help` and one command never load the others. To add one, write
 * `src/cli/<name>.ts` exporting `usage` and `run` ({@link CliCommand}) and add a line here.
 */
export const commands: Record<string, { summary: string; load: () => Promise<CliCommand> }> = {
  generate: {
    summary: 'write trigger migrations into the drizzle-kit `out` folder',
    load: () => import('./generate.ts'),
  },
  listen: {
    summary: 'run a listener module (with --processes N: a supervisor of N workers)',
    load: () => import('./listen.ts'),
  },
  status: {
    summary: 'pending / scheduled / failed / oldest age per channel, listeners connected (--check)',
    load: () => import('./status.ts'),
  },
  failed: {
    summary: 'list failed notifications (dead letters) with their last error',
    load: () => import('./admin-commands.ts').then((m) => m.failed),
  },
  retry: {
    summary: 're-queue failed notifications (--id, --channel or --all)',
    load: () => import('./admin-commands.ts').then((m) => m.retry),
  },
  purge: {
    summary: 'delete failed notifications older than --older-than',
    load: () => import('./admin-commands.ts').then((m) => m.purge),
  },
  dashboard: {
    summary: 'web dashboard: channels, listeners, failures (--allow-writes: retry, purge)',
    load: () => import('../dashboard/cli.ts'),
  },
};

/** Top-level help text. */
export function mainUsage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`)
    .join('\n');
  return `Usage: drizzle-pgpubsub <command> [options]

Commands:
${list}

Run \`drizzle-pgpubsub <command> --help\` for the options of a command.`;
}

/** Looks like a PgPubSubError from any copy of this package (dist, src, another install). */
function isUserError(error: unknown): error is Error {
  return (error as { name?: unknown } | null)?.name === 'PgPubSubError';
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and resolves to the exit code. A
 * PgPubSubError prints `error: <message>`; anything else prints its stack. Both exit 1.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? console.error : console.log)(mainUsage());
    return name === undefined ? 1 : 0;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    console.error(`error: unknown command ${JSON.stringify(name)}\n\n${mainUsage()}`);
    return 1;
  }
  try {
    return await (await command.load()).run(rest);
  } catch (error) {
    if (isUserError(error)) console.error(`error: ${error.message}`);
    else console.error((error as Error)?.stack ?? error);
    return 1;
  }
}

function invokedAsScript(): boolean {
  try {
    const script = process.argv[1];
    return script !== undefined && realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedAsScript()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error((error as Error)?.stack ?? error);
      process.exitCode = 1;
    },
  );
}
