import { readFileSync } from 'node:fs';

/**
 * The installed postgres.js major version. postgres.js 3 can crash its process with "Cannot read
 * properties of null (reading 'write')" when the server ends a connection under it (an uncatchable
 * throw in `nextWrite`, porsager/postgres#1154); tests that terminate backends of their own process's
 * clients skip on it, naming that bug.
 */
export const POSTGRES_JS_MAJOR = Number(
  // postgres.js 3 does not export its package.json: read the installed file.
  (
    JSON.parse(
      readFileSync(new URL('../../node_modules/postgres/package.json', import.meta.url), 'utf8'),
    ) as { version: string }
  ).version.split('.')[0],
);
