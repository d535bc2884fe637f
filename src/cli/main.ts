#!/usr/bin/env node
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CliCommand, runCommand } from './command.ts';
import { EXIT, printFatal, usageError } from './exit-codes.ts';

/** One line per command for the top-level help. */
const SUMMARIES: Record<string, string> = {
  generate: 'write trigger migrations into the drizzle-kit `out` folder',
  listen: 'run a listener module (with --processes N: a supervisor of N workers)',
  status: 'pending / scheduled / failed / oldest age per channel, listeners connected (--check)',
  failed: 'list failed notifications (dead letters) with their last error',
  retry: 're-queue failed notifications (--id, --channel or --all)',
  backfill: "enqueue a 'snapshot' event per existing row of a trigger channel (resumable)",
  purge: 'delete failed notifications older than --older-than',
  dashboard: 'web dashboard: channels, listeners, failures (--allow-writes: retry, purge)',
};

const LOADERS: Record<string, () => Promise<{ command: CliCommand }>> = {
  generate: () => import('./commands/generate.ts'),
  listen: () => import('./commands/listen.ts'),
  status: () => import('./commands/status.ts'),
  failed: () => import('./commands/failed.ts'),
  retry: () => import('./commands/retry.ts'),
  backfill: () => import('./commands/backfill.ts'),
  purge: () => import('./commands/purge.ts'),
  dashboard: () => import('./commands/dashboard.ts'),
};

/**
 * The commands and their one-line summaries, loaded lazily so `--help` and one command never load the others. To add one, write
 * `src/cli/commands/<name>.ts` exporting `command` ({@link CliCommand}) and add a line to SUMMARIES and LOADERS.
 */
export const commands: Record<string, { summary: string; load: () => Promise<CliCommand> }> =
  Object.fromEntries(
    Object.entries(LOADERS).map(([name, load]) => [
      name,
      { summary: SUMMARIES[name] ?? '', load: () => load().then((m) => m.command) },
    ]),
  );

/** Top-level help text. */
export function mainUsage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, { summary }]) => `  ${name.padEnd(width)}  ${summary}`)
    .join('\n');
  return `Usage: drizzle-pgpubsub <command> [options]

Commands:
${list}

Options:
  -h, --help     show this help
  -v, --version  print the version

Run \`drizzle-pgpubsub <command> --help\` for the options of a command.`;
}

/** The version in the package.json of this package (the nearest one named drizzle-pgpubsub above this file). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'drizzle-pgpubsub' && typeof pkg.version === 'string') return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and resolves to the exit code: `--help`
 * and `--version` exit 0; no command or an unknown one is a usage error (exit 2); a command runs
 * through {@link runCommand}, which maps its errors to the codes of docs/cli.md.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(mainUsage());
    return EXIT.ok;
  }
  if (name === '--version' || name === '-v') {
    console.log(packageVersion());
    return EXIT.ok;
  }
  const command = name !== undefined && Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    const message = name === undefined ? 'no command given.' : `unknown command ${JSON.stringify(name)}`;
    printFatal(usageError(message, mainUsage()), rest.includes('--json'));
    return EXIT.usage;
  }
  return runCommand(await command.load(), rest);
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
      process.exitCode = EXIT.failure;
    },
  );
}
