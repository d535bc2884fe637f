import { dollarQuote, quoteIdent, quoteLiteral } from '../identifiers.ts';
import { expandFunctionRef, notificationsRef, PACKED_TABLE, packedRef } from './sql-names.ts';

/** Tag whose `hashtext` is the advisory lock class that lets one listener at a time expand a channel's packed rows. */
export function expandLockTag(schema: string): string {
  return `drizzle-pgpubsub expand ${quoteIdent(schema)}`;
}

/**
 * Storage version 5: packed notifications (docs/architecture.md#packed-notifications-storage-version-5). A statement
 * on an unordered trigger channel that produces many row events stores their images in chunks, one
 * `packed` row per chunk, instead of one notification row per event. `expand_packed(channel, filter)`
 * turns the oldest packed row of a channel into ordinary notifications in one statement (the packed
 * row is deleted by the same transaction that inserts its events, so each event exists exactly once);
 * listeners call it before each claim. One listener at a time expands a channel's rows (a
 * transaction-level try-lock; the others skip), oldest first, so the events of a statement get
 * increasing ids in statement order across its chunks. The events keep the statement's `created_at`
 * (the producing transaction's start) as `run_at` and `created_at`, like per-row storage.
 * It is SECURITY DEFINER (listeners have no INSERT on notifications) and executable only by the roles
 * granted it (docs/security.md).
 */
export function packedStorageSql(schemaName: string): string[] {
  const table = notificationsRef(schemaName);
  const packed = packedRef(schemaName);
  const expand = expandFunctionRef(schemaName);
  const lockClass = `hashtext(${quoteLiteral(expandLockTag(schemaName))})`;
  return [
    `CREATE TABLE IF NOT EXISTS ${packed} (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text NOT NULL,
  "count" integer NOT NULL,
  "images" jsonb NOT NULL,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "created_at" timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 100, autovacuum_vacuum_cost_delay = 0)`,
    `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${PACKED_TABLE}_channel_idx`)} ON ${packed} ("channel", "id")`,
    // lz4 where the server has it (PostgreSQL 14+ built with lz4): the packed images are TOASTed, and
    // pglz compression was ~a third of the packed INSERT's cost (docs/benchmarks.md, W4).
    `DO ${dollarQuote(`BEGIN
  IF current_setting('server_version_num')::int >= 140000
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)) THEN
    EXECUTE ${quoteLiteral(`ALTER TABLE ${packed} ALTER COLUMN "images" SET COMPRESSION lz4`)};
  END IF;
END`)}`,
    `CREATE OR REPLACE FUNCTION ${expand}("p_channel" text, "p_filter" jsonb DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`DECLARE
  v_count integer := 0;
BEGIN
  IF NOT pg_try_advisory_xact_lock(${lockClass}, hashtext(p_channel)) THEN
    RETURN 0;
  END IF;
  WITH p AS (
    DELETE FROM ${packed} AS d WHERE d."id" = (SELECT k."id" FROM ${packed} AS k
      WHERE k."channel" = p_channel AND (p_filter IS NULL OR k."context" @> p_filter)
      ORDER BY k."id" LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING d."channel", d."op", d."images", d."context", d."created_at")
  INSERT INTO ${table} ("channel", "op", "old", "new", "context", "run_at", "created_at")
  SELECT p."channel", p."op", CASE WHEN p."op" = 'delete' THEN e.value END, CASE WHEN p."op" <> 'delete' THEN e.value END,
    p."context", p."created_at", p."created_at"
  FROM p CROSS JOIN LATERAL jsonb_array_elements(p."images") WITH ORDINALITY AS e(value, ord)
  ORDER BY e.ord;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END`)}`,
    `REVOKE ALL ON FUNCTION ${expand}(text, jsonb) FROM PUBLIC`,
  ];
}
