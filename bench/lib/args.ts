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

export function parseArgs(argv: string[]): CliOptions {
  const options: CliOptions = {
    only: [...WORKLOADS],
    reps: 3,
    quick: false,
    docs: false,
    save: true,
    report: undefined,
  };
  let save: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value.\n\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--only': {
        const ids = value()
          .split(',')
          .map((s) => s.trim().toUpperCase())
          .filter(Boolean);
        for (const id of ids) {
          if (!WORKLOADS.includes(id as WorkloadId)) throw new Error(`Unknown workload ${id}.\n\n${USAGE}`);
        }
        options.only = ids as WorkloadId[];
        break;
      }
      case '--reps': {
        const reps = Number(value());
        if (!Number.isInteger(reps) || reps < 1)
          throw new Error(`--reps must be a positive integer.\n\n${USAGE}`);
        options.reps = reps;
        break;
      }
      case '--quick':
        options.quick = true;
        break;
      case '--docs':
        options.docs = true;
        break;
      case '--no-save':
        save = false;
        break;
      case '--save':
        save = true;
        break;
      case '--report':
        options.report = value();
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`Unknown option ${arg}.\n\n${USAGE}`);
    }
  }
  options.save = save ?? !options.quick;
  return options;
}
