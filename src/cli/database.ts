import { PgPubSubError } from '../errors.ts';

/**
 * The database URL of a command: `--database-url`, else `DATABASE_URL`. Throws `NO_DATABASE_URL`
 * (with what to do) when neither is set, `INVALID_OPTIONS` when it is not a postgres URL.
 */
export function resolveDatabaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const url = flag ?? env.DATABASE_URL;
  if (url === undefined || url.trim() === '') {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      'DATABASE_URL is not set. Set it to your PostgreSQL connection URL (export DATABASE_URL=postgres://user:password@host:5432/dbname) or pass --database-url <url>.',
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      `DATABASE_URL is not a valid URL. Expected postgres://user:password@host:5432/dbname.`,
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PgPubSubError(
      'NO_DATABASE_URL',
      `DATABASE_URL must start with postgres:// or postgresql://, got ${parsed.protocol}//… (expected postgres://user:password@host:5432/dbname).`,
    );
  }
  return url;
}
