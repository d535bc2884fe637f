import { parseArgs as nodeParseArgs } from 'node:util';
import { type BenchOptions, WORKLOADS, type WorkloadId } from './context.ts';

export interface CliOptions extends BenchOptions {
  /** Also rewrite docs/benchmarks.md's generated section and the SVG chart. */
  docs: boolean;
  /** Write the results JSON (default: yes, except for `--quick` runs; `--save` / `--no-save`). */
  save: boolean;
  /** Re-render tables (and docs with --docs) from a saved results JSON instead of running. */
  report: string | undefined;
}

const USAGE = `npm run bench -- [--only W1,W2,...] [--reps N] [--quick] [--docs] [--no-save]

  --only W1,...  workloads to run (default: all of ${WORKLOADS.join(', ')})
  --reps N       repetitions of every measurement (default 3)
  --quick        tiny sizes: a smoke test of the harness, numbers meaningless
  --docs         update docs/benchmarks.md (generated section) and docs/benchmarks.svg
  --no-save      do not write bench/results/<date>-pg<major>.json (quick runs: not written unless --save)
  --report FILE  print the tables of a saved results JSON (with --docs: rewrite the docs from it); runs nothing
Environment: DATABASE_URL=postgres://… runs against that server instead of an embedded PostgreSQL 18.`;

/** Parses the benchmark's arguments with `node:util` `parseArgs`; a bad one throws with the usage. */
export function parseArgs(argv: string[]): CliOptions {
  let parsed: ReturnType<typeof parseArgv>;
  try {
    parsed = parseArgv(argv);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n\n${USAGE}`);
  }
  const { values, tokens } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const options: CliOptions = {
    only: [...WORKLOADS],
    reps: 3,
    quick: values.quick ?? false,
    docs: values.docs ?? false,
    save: true,
    report: values.report,
  };
  if (values.only !== undefined) {
    const ids = values.only
      .split(',')
      .map((s) => s.trim().toUpperCase())
      .filter(Boolean);
    for (const id of ids) {
      if (!WORKLOADS.includes(id as WorkloadId)) throw new Error(`Unknown workload ${id}.\n\n${USAGE}`);
    }
    options.only = ids as WorkloadId[];
  }
  if (values.reps !== undefined) {
    const reps = Number(values.reps);
    if (!Number.isInteger(reps) || reps < 1)
      throw new Error(`--reps must be a positive integer.\n\n${USAGE}`);
    options.reps = reps;
  }
  // The last of --save / --no-save wins; neither: save unless --quick.
  const last = tokens
    .filter((t) => t.kind === 'option' && (t.name === 'save' || t.name === 'no-save'))
    .at(-1);
  options.save = last === undefined ? !options.quick : last.kind === 'option' && last.name === 'save';
  return options;
}

function parseArgv(argv: string[]) {
  return nodeParseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      reps: { type: 'string' },
      quick: { type: 'boolean' },
      docs: { type: 'boolean' },
      save: { type: 'boolean' },
      'no-save': { type: 'boolean' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
    allowPositionals: false,
    tokens: true,
  });
}
