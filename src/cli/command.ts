import { type ParseArgsConfig, parseArgs } from 'node:util';
import { EXIT, exitCodeFor, printFatal, usageError } from './exit-codes.ts';

/** The `options` of a command, in `node:util` `parseArgs` form (`--help` is added by the runner). */
export type CommandOptions = NonNullable<ParseArgsConfig['options']>;

/** Parsed option values of a command. */
export type CommandValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** What the runner hands a command: its parsed arguments. */
export interface CommandArgs {
  values: CommandValues;
  positionals: string[];
  /** The `parseArgs` tokens, for commands that pass arguments on (listen → its workers). */
  tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>;
  /** The raw arguments after the command name. */
  argv: string[];
}

/** What every file under `src/cli/commands/` exports as `command`. */
export interface CliCommand {
  /** Help text, printed for `--help` and after a usage error. */
  usage: string;
  /** The command's options (without `--help`). */
  options: CommandOptions;
  /** Whether the command takes positional arguments (default: none). */
  positionals?: boolean;
  /** Runs the command; resolves to the exit code. Throwing is fine: the runner maps the error. */
  run(args: CommandArgs): Promise<number>;
}

/**
 * The one command runner: parses `argv` strictly with `parseArgs` (an unknown or malformed option is a
 * usage error, exit 2, with the help text), prints the help for `--help` (exit 0), runs the command
 * and turns whatever it throws into `error: <message>` (one JSON line with `--json`) and the exit
 * code docs/cli.md promises ({@link exitCodeFor}).
 */
export async function runCommand(command: CliCommand, argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({
        args: argv,
        options: { ...command.options, help: { type: 'boolean', short: 'h' } },
        strict: true,
        allowPositionals: command.positionals ?? false,
        tokens: true,
      });
    } catch (error) {
      throw usageError((error as Error).message, command.usage);
    }
    if (parsed.values.help === true) {
      console.log(command.usage);
      return EXIT.ok;
    }
    return await command.run({
      values: parsed.values as CommandValues,
      positionals: parsed.positionals,
      tokens: parsed.tokens ?? [],
      argv,
    });
  } catch (error) {
    printFatal(error, json);
    return exitCodeFor(error);
  }
}
