/**
 * Which drizzle-kit the project has installed, read from its own `node_modules` (never guessed): it
 * decides the layout `generate` writes into an empty migrations folder.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** An installed drizzle-kit. */
export interface InstalledKit {
  version: string;
  /** Major version: 0 for 0.x (journal layout), 1 for 1.0 and its prereleases (folder layout). */
  major: number;
  /** Its package.json. */
  path: string;
}

/**
 * The drizzle-kit that Node would resolve from `dir`: the nearest `node_modules/drizzle-kit` in `dir`
 * or a parent folder. `undefined` when none is installed.
 */
export function installedDrizzleKit(dir: string): InstalledKit | undefined {
  for (let at = dir; ; at = dirname(at)) {
    const path = join(at, 'node_modules', 'drizzle-kit', 'package.json');
    if (existsSync(path)) {
      try {
        const version = String((JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown }).version);
        const major = Number.parseInt(version, 10);
        if (Number.isFinite(major)) return { version, major, path };
      } catch {
        // An unreadable package.json: keep looking further up, as Node's resolution would fail here too.
      }
    }
    if (dirname(at) === at) return undefined;
  }
}
