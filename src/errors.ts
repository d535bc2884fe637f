/**
 * Stable, machine-readable error codes. Match on `error.code`, never on the message text.
 */
export type PgPubSubErrorCode =
  | 'INVALID_CHANNEL_NAME'
  | 'INVALID_CHANNEL'
  | 'DUPLICATE_CHANNEL'
  | 'NO_PRIMARY_KEY'
  | 'INVALID_PAYLOAD'
  | 'PAYLOAD_TOO_LARGE'
  | 'INVALID_CONTEXT'
  | 'INVALID_OPTIONS'
  | 'UNKNOWN_CHANNEL'
  | 'UNSUPPORTED_DATABASE'
  | 'LISTENER_STATE'
  | 'HANDLER_TIMEOUT'
  | 'LEASE_EXPIRED'
  | 'LEASE_LOST'
  | 'ABORTED'
  | 'DECODE_FAILED'
  | 'PERMISSION_DENIED'
  | 'TABLE_MISSING'
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_INVALID'
  | 'SCHEMA_IMPORT_FAILED'
  | 'MIGRATIONS_INVALID'
  | 'MIGRATION_ORDER'
  | 'MODULE_NOT_FOUND'
  | 'MODULE_LOAD_FAILED'
  | 'NO_LISTENER_EXPORT'
  | 'NO_DATABASE_URL'
  | 'DATABASE_UNREACHABLE'
  | 'DRIVER_MISSING'
  | 'POOL_TOO_SMALL'
  | 'INVALID_SCHEDULE'
  | 'SCHEDULE_MISSING'
  | 'CHANNEL_NOT_INSTALLED'
  | 'STORAGE_OUTDATED'
  | 'BACKFILL_CONFLICT'
  | 'MISSING_DEPENDENCY';

const BRAND = Symbol.for('drizzle-pgpubsub.error');

/**
 * The one error class thrown by drizzle-pgpubsub. `code` is stable; `message` says what to do.
 */
export class PgPubSubError extends Error {
  /** A stable string code such as `INVALID_PAYLOAD`. */
  readonly code: PgPubSubErrorCode;

  constructor(code: PgPubSubErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgPubSubError';
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** True when `error` is a {@link PgPubSubError}, optionally with the given code. */
export function isPgPubSubError(error: unknown, code?: PgPubSubErrorCode): error is PgPubSubError {
  // A brand rather than instanceof: schema files loaded through jiti may use another copy of the package.
  const branded =
    typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[BRAND] === true;
  return branded && (code === undefined || (error as PgPubSubError).code === code);
}

/**
 * The code of a PgPubSubError from any copy of this package (dist, src, another install, a schema file
 * loaded through jiti), recognised by name: undefined for anything else.
 */
export function pgPubSubErrorCode(error: unknown): PgPubSubErrorCode | undefined {
  const e = error as { name?: unknown; code?: unknown } | null;
  return typeof e === 'object' && e?.name === 'PgPubSubError' && typeof e.code === 'string'
    ? (e.code as PgPubSubErrorCode)
    : undefined;
}

/** `error` and its causes (`error.cause`, its cause…), at most `depth` of them: the one walk of a cause chain. */
export function* errorChain(error: unknown, depth = 5): Generator<unknown> {
  let current = error;
  for (let i = 0; current !== undefined && current !== null && i < depth; i++) {
    yield current;
    current = typeof current === 'object' ? (current as { cause?: unknown }).cause : undefined;
  }
}

/** The string `code` properties along `error`'s cause chain ({@link errorChain}). */
export function* errorCodes(error: unknown, depth = 5): Generator<string> {
  for (const e of errorChain(error, depth)) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') yield code;
  }
}
