/**
 * The committed migrations of examples/ are what the current version generates: running the
 * example's own instructions (`drizzle-kit generate`, then `drizzle-pgpubsub generate`) in a copy of
 * it writes nothing new and changes nothing.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.js');

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else out[relative(dir, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe('examples/ migrations', () => {
  // Inside the checkout, so the copy resolves drizzle-orm and drizzle-pgpubsub (dist/) as the original does.
  const scratch = join(ROOT, '.tmp', `examples-${randomBytes(4).toString('hex')}`);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it.each(['authors-posts', 'search-sync'])(
    '%s: generating again writes nothing',
    { timeout: 120_000 },
    (example) => {
      expect(existsSync(CLI), 'run `npm run build` first').toBe(true);
      const source = join(ROOT, 'examples', example);
      const copy = join(scratch, example);
      mkdirSync(scratch, { recursive: true });
      cpSync(source, copy, { recursive: true });
      for (const [cmd, args] of [
        [process.execPath, [join(ROOT, 'node_modules/drizzle-kit/bin.cjs'), 'generate']],
        [process.execPath, [CLI, 'generate']],
      ] as const) {
        const r = spawnSync(cmd, args, { cwd: copy, encoding: 'utf8' });
        expect(r.status, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(0);
      }
      expect(files(join(copy, 'drizzle'))).toEqual(files(join(source, 'drizzle')));
    },
  );
});
