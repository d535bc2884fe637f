-- Written by `drizzle-pgpubsub generate`. Do not edit: change your channels and run it again.
-- drizzle-pgpubsub:storage {"version":5,"schema":"pgpubsub"}
-- drizzle-pgpubsub:channel {"name":"authors","hash":"b96744837d77a9ad","tableSchema":"public","table":"authors"}
CREATE SCHEMA IF NOT EXISTS "pgpubsub";
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "pgpubsub"."notifications" (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text,
  "old" jsonb,
  "new" jsonb,
  "payload" jsonb,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "status" text NOT NULL DEFAULT 'pending',
  "attempts" integer NOT NULL DEFAULT 0,
  "run_at" timestamptz NOT NULL DEFAULT now(),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "last_error" text,
  "failed_at" timestamptz,
  "ordering_key" text,
  "dedup_key" text COLLATE "C",
  "priority" integer NOT NULL DEFAULT 0,
  CONSTRAINT "notifications_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate') AND "status" IN ('pending', 'failed'))
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_claim_idx" ON "pgpubsub"."notifications" ("channel", "run_at", "id") WHERE "status" = 'pending';
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_failed_idx" ON "pgpubsub"."notifications" ("channel", "failed_at") WHERE "status" = 'failed';
--> statement-breakpoint
CREATE UNLOGGED TABLE IF NOT EXISTS "pgpubsub"."wakeups" ("channel" text NOT NULL, "key" integer NOT NULL, "idle" boolean NOT NULL, PRIMARY KEY ("channel", "key"));
--> statement-breakpoint
DO $pgpubsub$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = '"pgpubsub"."wakeups"'::regclass AND attname = 'key' AND NOT attisdropped) THEN
    DELETE FROM "pgpubsub"."wakeups";
    ALTER TABLE "pgpubsub"."wakeups" DROP CONSTRAINT "wakeups_pkey", ADD COLUMN "key" integer NOT NULL, ADD PRIMARY KEY ("channel", "key");
  END IF;
END
$pgpubsub$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."notify"("p_channel" text, "p_payload" jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context")
  VALUES (p_channel, p_payload, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb))
  RETURNING "id" INTO v_id;
  IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = p_channel AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
    PERFORM pg_notify(p_channel, '');
  END IF;
  RETURN v_id;
END
$pgpubsub$;
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "pgpubsub"."schedules" (
  "name" text PRIMARY KEY,
  "cron" text NOT NULL,
  "timezone" text NOT NULL,
  "payload" jsonb NOT NULL,
  "catch_up" integer NOT NULL,
  "last_slot" timestamptz NOT NULL DEFAULT date_trunc('second', now())
);
--> statement-breakpoint
ALTER TABLE "pgpubsub"."notifications" ADD COLUMN IF NOT EXISTS "ordering_key" text;
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_ordering_idx" ON "pgpubsub"."notifications" ("channel", "ordering_key", "id") WHERE "ordering_key" IS NOT NULL;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."notify"("p_channel" text, "p_payload" jsonb, "p_ordering_key" text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
DECLARE
  v_id bigint;
BEGIN
  IF p_ordering_key IS NOT NULL THEN
    PERFORM pg_advisory_xact_lock(hashtextextended(jsonb_build_array(p_channel, p_ordering_key)::text, 0));
  END IF;
  INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context", "ordering_key")
  VALUES (p_channel, p_payload, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb), p_ordering_key)
  RETURNING "id" INTO v_id;
  IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = p_channel AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
    PERFORM pg_notify(p_channel, '');
  END IF;
  RETURN v_id;
END
$pgpubsub$;
--> statement-breakpoint
ALTER TABLE "pgpubsub"."notifications" ADD COLUMN IF NOT EXISTS "dedup_key" text COLLATE "C";
--> statement-breakpoint
ALTER TABLE "pgpubsub"."notifications" ADD COLUMN IF NOT EXISTS "priority" integer NOT NULL DEFAULT 0;
--> statement-breakpoint
CREATE UNIQUE INDEX IF NOT EXISTS "notifications_dedup_idx" ON "pgpubsub"."notifications" ("channel", "dedup_key") WHERE "status" = 'pending' AND "dedup_key" IS NOT NULL;
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_priority_idx" ON "pgpubsub"."notifications" ("channel", "priority" DESC, "run_at", "id") WHERE "status" = 'pending' AND "priority" > 0;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."notify_many"("p_channel" text, "p_payloads" jsonb, "p_options" jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE ("notification_id" bigint, "outcome" text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
DECLARE
  v_context jsonb := coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb);
  v_run_at timestamptz := coalesce((p_options->>'runAt')::timestamptz, now() + coalesce((p_options->>'delayMs')::float8, 0) * interval '1 millisecond');
  v_priority integer := coalesce((p_options->>'priority')::integer, 0);
  v_replace boolean := coalesce(p_options->>'onDuplicate', 'skip') = 'replace';
  v_keys jsonb := p_options->'keys';
  v_item record;
  v_key text;
  v_id bigint;
  v_count bigint := 0;
BEGIN
  IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'drizzle-pgpubsub notify_many: payloads must be a JSON array' USING ERRCODE = '22023';
  END IF;
  IF coalesce(p_options->>'onDuplicate', 'skip') NOT IN ('skip', 'replace') THEN
    RAISE EXCEPTION 'drizzle-pgpubsub notify_many: onDuplicate must be skip or replace' USING ERRCODE = '22023';
  END IF;
  IF v_keys IS NULL OR jsonb_typeof(v_keys) = 'null' THEN
    RETURN QUERY WITH ins AS (
      INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context", "run_at", "priority")
      SELECT p_channel, e.value, v_context, v_run_at, v_priority
      FROM jsonb_array_elements(p_payloads) WITH ORDINALITY AS e(value, ord) ORDER BY e.ord
      RETURNING "pgpubsub"."notifications"."id")
    SELECT ins."id", 'inserted'::text FROM ins ORDER BY ins."id";
    GET DIAGNOSTICS v_count = ROW_COUNT;
  ELSE
    FOR v_item IN SELECT e.value, e.ord FROM jsonb_array_elements(p_payloads) WITH ORDINALITY AS e(value, ord) ORDER BY e.ord LOOP
      v_key := v_keys->>(v_item.ord::integer - 1);
      v_id := NULL;
      IF v_key IS NULL THEN
        INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context", "run_at", "priority")
        VALUES (p_channel, v_item.value, v_context, v_run_at, v_priority) RETURNING "pgpubsub"."notifications"."id" INTO v_id;
        notification_id := v_id; outcome := 'inserted'; v_count := v_count + 1;
        RETURN NEXT;
        CONTINUE;
      END IF;
      IF strpos(v_key, chr(1)) > 0 THEN
        RAISE EXCEPTION 'drizzle-pgpubsub notify_many: a dedup key must not contain the character U+0001' USING ERRCODE = '22023';
      END IF;
      PERFORM pg_advisory_xact_lock(hashtext('drizzle-pgpubsub dedup "pgpubsub"'), hashtext(p_channel || chr(1) || v_key));
      IF v_replace THEN
        SELECT n."id" INTO v_id FROM "pgpubsub"."notifications" n WHERE n."channel" = p_channel AND n."status" = 'pending' AND (n."dedup_key" = v_key OR (n."dedup_key" > v_key || chr(1) AND n."dedup_key" < v_key || chr(2))) ORDER BY n."id" DESC LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF v_id IS NOT NULL THEN
          UPDATE "pgpubsub"."notifications" SET "payload" = v_item.value, "run_at" = v_run_at, "priority" = v_priority,
            "context" = v_context, "attempts" = 0, "last_error" = NULL
          WHERE "pgpubsub"."notifications"."id" = v_id;
          notification_id := v_id; outcome := 'replaced'; v_count := v_count + 1;
          RETURN NEXT;
          CONTINUE;
        END IF;
        -- Every pending row of the key is held by a listener (its handler runs): a successor.
        IF EXISTS (SELECT 1 FROM "pgpubsub"."notifications" n WHERE n."channel" = p_channel AND n."status" = 'pending' AND (n."dedup_key" = v_key OR (n."dedup_key" > v_key || chr(1) AND n."dedup_key" < v_key || chr(2)))) THEN
          v_key := v_key || chr(1) || gen_random_uuid()::text;
        END IF;
      ELSE
        SELECT n."id" INTO v_id FROM "pgpubsub"."notifications" n WHERE n."channel" = p_channel AND n."status" = 'pending' AND (n."dedup_key" = v_key OR (n."dedup_key" > v_key || chr(1) AND n."dedup_key" < v_key || chr(2))) ORDER BY n."id" DESC LIMIT 1;
        IF v_id IS NOT NULL THEN
          notification_id := v_id; outcome := 'skipped';
          RETURN NEXT;
          CONTINUE;
        END IF;
      END IF;
      INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context", "run_at", "priority", "dedup_key")
      VALUES (p_channel, v_item.value, v_context, v_run_at, v_priority, v_key) RETURNING "pgpubsub"."notifications"."id" INTO v_id;
      notification_id := v_id; outcome := 'inserted'; v_count := v_count + 1;
      RETURN NEXT;
    END LOOP;
  END IF;
  IF v_count > 0 AND (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = p_channel AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
    IF v_run_at <= now() THEN
      PERFORM pg_notify(p_channel, '');
    ELSIF NOT EXISTS (SELECT 1 FROM "pgpubsub"."notifications" n WHERE n."channel" = p_channel AND n."status" = 'pending' AND n."run_at" > now() AND n."run_at" < v_run_at) THEN
      PERFORM pg_notify(p_channel, 'at:' || greatest(0, ceil(extract(epoch FROM v_run_at - clock_timestamp()) * 1000))::bigint::text);
    END IF;
  END IF;
END
$pgpubsub$;
--> statement-breakpoint
ALTER TABLE "pgpubsub"."notifications" DROP CONSTRAINT IF EXISTS "notifications_op_check", DROP CONSTRAINT IF EXISTS "notifications_status_check";
--> statement-breakpoint
DO $pgpubsub$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = '"pgpubsub"."notifications"'::regclass AND conname = 'notifications_check') THEN
    ALTER TABLE "pgpubsub"."notifications" ADD CONSTRAINT "notifications_check" CHECK ("op" IN ('insert', 'update', 'delete', 'snapshot', 'truncate') AND "status" IN ('pending', 'failed'));
  END IF;
END
$pgpubsub$;
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "pgpubsub"."backfills" (
  "channel" text PRIMARY KEY,
  "last_key" jsonb,
  "where_sql" text,
  "rows" bigint NOT NULL DEFAULT 0,
  "pages" bigint NOT NULL DEFAULT 0,
  "started_at" timestamptz NOT NULL DEFAULT now(),
  "updated_at" timestamptz NOT NULL DEFAULT now(),
  "finished_at" timestamptz
);
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "pgpubsub"."packed" (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text NOT NULL,
  "count" integer NOT NULL,
  "images" jsonb NOT NULL,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "created_at" timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 100, autovacuum_vacuum_cost_delay = 0);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "packed_channel_idx" ON "pgpubsub"."packed" ("channel", "id");
--> statement-breakpoint
DO $pgpubsub$
BEGIN
  IF current_setting('server_version_num')::int >= 140000
    AND EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)) THEN
    EXECUTE 'ALTER TABLE "pgpubsub"."packed" ALTER COLUMN "images" SET COMPRESSION lz4';
  END IF;
END
$pgpubsub$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."expand_packed"("p_channel" text, "p_filter" jsonb DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
DECLARE
  v_count integer := 0;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('drizzle-pgpubsub expand "pgpubsub"'), hashtext(p_channel)) THEN
    RETURN 0;
  END IF;
  WITH p AS (
    DELETE FROM "pgpubsub"."packed" AS d WHERE d."id" = (SELECT k."id" FROM "pgpubsub"."packed" AS k
      WHERE k."channel" = p_channel AND (p_filter IS NULL OR k."context" @> p_filter)
      ORDER BY k."id" LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING d."channel", d."op", d."images", d."context", d."created_at")
  INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "run_at", "created_at")
  SELECT p."channel", p."op", CASE WHEN p."op" = 'delete' THEN e.value END, CASE WHEN p."op" <> 'delete' THEN e.value END,
    p."context", p."created_at", p."created_at"
  FROM p CROSS JOIN LATERAL jsonb_array_elements(p."images") WITH ORDINALITY AS e(value, ord)
  ORDER BY e.ord;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END
$pgpubsub$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "pgpubsub"."expand_packed"(text, jsonb) FROM PUBLIC;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."ch_authors"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = '1' SET TimeZone = 'UTC' SET bytea_output = 'hex' AS $pgpubsub$
#variable_conflict use_column
DECLARE
  v_context jsonb := coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb);
  v_count bigint := 0;
  v_image jsonb;
  v_image2 jsonb;
  v_images jsonb[];
  v_pack integer;
  v_error text;
  v_key text;
  v_part jsonb;
  r record;
BEGIN
  IF TG_TABLE_NAME <> 'authors' OR TG_TABLE_SCHEMA <> 'public' THEN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(TG_RELID) AS a WHERE a.relid = pg_catalog.to_regclass('"public"."authors"'))
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c WHERE c.oid = TG_RELID AND c.relpersistence = 'p' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')) THEN
      RAISE EXCEPTION 'The drizzle-pgpubsub trigger function of channel "authors" was generated for table "public"."authors" and may not fire for "%"."%"', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Renamed the table? Run drizzle-pgpubsub generate and apply its migration.';
    END IF;
  END IF;
  IF TG_LEVEL = 'ROW' THEN
    IF TG_OP = 'INSERT' THEN
      BEGIN
        v_image2 := to_jsonb(NEW);
      EXCEPTION WHEN OTHERS THEN
        BEGIN
      v_image2 := to_jsonb(NEW);
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        v_image2 := '{}';
        FOR v_key IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
          BEGIN
            EXECUTE format('SELECT to_jsonb(($1).%I)', v_key) INTO v_part USING NEW;
          EXCEPTION WHEN OTHERS THEN
            EXECUTE format('SELECT jsonb_build_object(%L, ($1).%I::text)', '$pgpubsub:json', v_key) INTO v_part USING NEW;
          END;
          v_image2 := v_image2 || jsonb_build_object(v_key, v_part);
        END LOOP;
      EXCEPTION WHEN OTHERS THEN
        v_image2 := NULL;
        v_error := 'drizzle-pgpubsub could not store the row image (too large or not representable as jsonb): ' || SQLERRM;
      END;
    END;
      END;
    END IF;
    INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
    VALUES ('authors', lower(TG_OP), v_image, v_image2, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb), CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END);
    -- Fired on a partition: no statement-level trigger of the parent sends the wake-up.
    IF TG_TABLE_NAME <> 'authors' OR TG_TABLE_SCHEMA <> 'public' THEN
      IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0))) THEN
        IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = 'authors' AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
          PERFORM pg_notify('authors', '');
        END IF;
      END IF;
    END IF;
    RETURN NULL;
  END IF;
  -- Nested IFs: a condition holding a subquery leaves plpgsql's fast path for simple expressions.
  IF TG_OP <> 'INSERT' THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhparent WHERE i.inhparent = TG_RELID AND c.relkind = 'r') THEN
      RAISE EXCEPTION 'Table "public"."authors" has inheritance children: drizzle-pgpubsub does not watch tables with inheritance (rows stored in a child fire no trigger of the parent). Use declarative partitioning, or watch each table itself.'
        USING ERRCODE = 'feature_not_supported';
    END IF;
  END IF;
  IF TG_OP = 'INSERT' THEN
    BEGIN
      v_images := ARRAY(SELECT to_jsonb(new.*) FROM pgpubsub_new AS new);
    EXCEPTION WHEN OTHERS THEN
      v_images := NULL;
    END;
    IF v_images IS NOT NULL THEN
      -- Many events: packed, expanded by a listener (storage version 5). A packed row holds at most
      -- 1000 images and 67108864 bytes of them (a jsonb value holds at most 256 MB,
      -- so large images pack fewer a row); a statement with an image over 16777216 bytes
      -- keeps one row per event, as before.
      v_pack := 0;
      IF cardinality(v_images) >= 8 THEN
        v_pack := least(1000, 67108864 / greatest((SELECT max(pg_catalog.pg_column_size(b.img)) FROM unnest(v_images) AS b(img)), 1));
      END IF;
      IF v_pack >= 4 THEN
        INSERT INTO "pgpubsub"."packed" ("channel", "op", "count", "images", "context")
        SELECT 'authors', 'insert', count(*), jsonb_agg(i.img ORDER BY i.ord), v_context
        FROM unnest(v_images) WITH ORDINALITY AS i(img, ord)
        GROUP BY (i.ord - 1) / v_pack ORDER BY (i.ord - 1) / v_pack;
        v_count := cardinality(v_images);
      ELSE
      INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
      SELECT 'authors', 'insert', NULL, i, v_context, 'pending', NULL, NULL FROM unnest(v_images) AS i;
      GET DIAGNOSTICS v_count = ROW_COUNT;
      END IF;
    ELSE
      FOR r IN SELECT ROW(new.*)::"public"."authors" AS pgpubsub_row FROM pgpubsub_new AS new LOOP
        v_error := NULL;
        BEGIN
      v_image := to_jsonb(r.pgpubsub_row);
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        v_image := '{}';
        FOR v_key IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
          BEGIN
            EXECUTE format('SELECT to_jsonb(($1).%I)', v_key) INTO v_part USING r.pgpubsub_row;
          EXCEPTION WHEN OTHERS THEN
            EXECUTE format('SELECT jsonb_build_object(%L, ($1).%I::text)', '$pgpubsub:json', v_key) INTO v_part USING r.pgpubsub_row;
          END;
          v_image := v_image || jsonb_build_object(v_key, v_part);
        END LOOP;
      EXCEPTION WHEN OTHERS THEN
        v_image := NULL;
        v_error := 'drizzle-pgpubsub could not store the row image (too large or not representable as jsonb): ' || SQLERRM;
      END;
    END;
        INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
        VALUES ('authors', 'insert', NULL, v_image, v_context, CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END);
        v_count := v_count + 1;
      END LOOP;
    END IF;
  END IF;
  IF v_count > 0 THEN
    IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0))) THEN
      IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = 'authors' AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
        PERFORM pg_notify('authors', '');
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END
$pgpubsub$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "pgpubsub"."ch_authors"() FROM PUBLIC;
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_ins" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_upd" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_wake" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_del" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_trunc" ON "public"."authors";
--> statement-breakpoint
DO $pgpubsub$
DECLARE
  v_relkind "char" := (SELECT relkind FROM pg_catalog.pg_class WHERE oid = '"public"."authors"'::regclass);
BEGIN
  IF v_relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = '"public"."authors"'::regclass) THEN
    RAISE EXCEPTION 'Table "public"."authors" has inheritance children: drizzle-pgpubsub does not watch tables with inheritance (rows stored in a child fire no trigger of the parent). Use declarative partitioning, or watch each table itself.' USING ERRCODE = 'feature_not_supported';
  END IF;
  IF v_relkind = 'p' THEN
    EXECUTE 'CREATE TRIGGER "pgpubsub_authors_ins" AFTER INSERT ON "public"."authors" FOR EACH ROW EXECUTE FUNCTION "pgpubsub"."ch_authors"()';
  ELSE
    EXECUTE 'CREATE TRIGGER "pgpubsub_authors_ins" AFTER INSERT ON "public"."authors" REFERENCING NEW TABLE AS "pgpubsub_new" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_authors"()';
  END IF;
END
$pgpubsub$;
