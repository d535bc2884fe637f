import { createHash } from 'node:crypto';

/** PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

/** Quotes an SQL identifier: `my "table"` → `"my ""table"""`. The only place identifiers are quoted. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a schema-qualified name; a missing schema means `public`. */
export function qualify(schema: string | undefined, name: string): string {
  return `${quoteIdent(schema ?? 'public')}.${quoteIdent(name)}`;
}

/** Quotes an SQL string literal for generated DDL, where parameters cannot be used. */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('SQL literals cannot contain NUL characters');
  return `'${value.replaceAll("'", "''")}'`;
}

/** Byte length in UTF-8, which is what PostgreSQL's 63-byte limit counts. */
export function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

/**
 * A deterministic identifier of at most 63 bytes: `prefix + name + suffix` when it fits,
 * otherwise `prefix + <16 hex digits of sha256(name)> + suffix`.
 */
export function boundedIdent(prefix: string, name: string, suffix = ''): string {
  const full = `${prefix}${name}${suffix}`;
  if (byteLength(full) <= MAX_IDENTIFIER_BYTES) return full;
  return `${prefix}${createHash('sha256').update(name).digest('hex').slice(0, 16)}${suffix}`;
}

/**
 * Wraps a function body in a dollar quote whose tag does not occur in the body: `$pgpubsub$`, or
 * `$pgpubsub_1$`, `$pgpubsub_2$` … Identifiers and literals inside the body (channel, table and
 * column names) can then never end the quote early.
 */
export function dollarQuote(body: string): string {
  let tag = '$pgpubsub$';
  for (let n = 1; body.includes(tag); n++) tag = `$pgpubsub_${n}$`;
  return `${tag}\n${body}\n${tag}`;
}

/**
 * Decimal ids (or xids) as a PostgreSQL array literal. Sent as text, it needs no array type lookup,
 * so it works on clients created with `fetch_types: false`.
 */
export function arrayLiteral(ids: readonly string[]): string {
  if (ids.some((id) => !/^\d+$/.test(id))) throw new Error('arrayLiteral takes decimal ids only');
  return `{${ids.join(',')}}`;
}
