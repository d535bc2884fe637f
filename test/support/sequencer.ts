import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Files that take longest (tens of seconds: child processes, embedded servers, nested runs), longest
 * first. Vitest starts files in the order {@link LongFirstSequencer} returns; started last, one of
 * these keeps one worker busy for a minute while the other has nothing left to run.
 */
export const LONG_FILES = [
  'test/bench-smoke.test.ts',
  'test/chaos.test.ts',
  'test/exit-codes.test.ts',
  'test/backfill-sync.test.ts',
  'test/wakeups.test.ts',
  'test/readme-quickstart.test.ts',
  'test/cli.test.ts',
  'test/multiprocess.test.ts',
  'test/runtime-hardening.test.ts',
  'test/cli-pg-only.test.ts',
  'test/schedules.test.ts',
  'test/examples-current.test.ts',
];

/**
 * Vitest's own order (failed first, then longest first by the durations it cached from the last
 * run, else larger files first), except that {@link LONG_FILES} always go first: a fresh checkout
 * (`npm ci`, CI) has no cache, and file size says little about how long a file runs.
 */
export class LongFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = LONG_FILES.findIndex((f) => spec.moduleId.endsWith(`/${f}`));
      return i < 0 ? LONG_FILES.length : i;
    };
    return sorted
      .map((spec, index) => ({ spec, index, rank: rank(spec) }))
      .sort((a, b) => a.rank - b.rank || a.index - b.index)
      .map(({ spec }) => spec);
  }
}
