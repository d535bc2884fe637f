import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Inside the repository (git-ignored), so the built files resolve packages from its node_modules. */
const OUT = join(ROOT, '.tmp', 'bench-build');
const DIRS = ['src', 'bench', 'tools'];

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'results' && entry.name !== 'node_modules') out.push(...(await tsFiles(path)));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(path);
    }
  }
  return out;
}

let built: Promise<string> | undefined;

/**
 * Transpiles src/, bench/ and tools/ to plain JavaScript (no type check) and returns the path of the
 * built worker. Worker processes run it with plain `node`: a TypeScript loader (jiti) in the measured
 * process would add its own memory (tens of MB) and CPU to every number taken there.
 */
export function workerBuild(): Promise<string> {
  built ??= (async () => {
    await rm(OUT, { recursive: true, force: true });
    const options: ts.CompilerOptions = {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      verbatimModuleSyntax: true,
      rewriteRelativeImportExtensions: true,
    };
    for (const dir of DIRS) {
      for (const file of await tsFiles(join(ROOT, dir))) {
        const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
          compilerOptions: options,
          fileName: file,
        });
        const target = join(OUT, relative(ROOT, file)).replace(/\.ts$/, '.js');
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, outputText);
      }
    }
    return join(OUT, 'bench', 'worker.js');
  })();
  return built;
}
