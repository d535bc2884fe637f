-- Written by `drizzle-pgpubsub generate`. Do not edit: change your channels and run it again.
-- drizzle-pgpubsub:channel {"name":"articles","hash":"6ff62535c5cf0153","tableSchema":"public","table":"articles"}
CREATE OR REPLACE FUNCTION "pgpubsub"."ch_articles"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres' SET extra_float_digits = '1' SET TimeZone = 'UTC' SET bytea_output = 'hex' AS $pgpubsub$
#variable_conflict use_column
DECLARE
  v_context jsonb := coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb);
  v_count bigint := 0;
  v_image jsonb;
  v_image2 jsonb;
  v_images jsonb[];
  v_error text;
  v_key text;
  v_part jsonb;
  r record;
BEGIN
  IF TG_TABLE_NAME <> 'articles' OR TG_TABLE_SCHEMA <> 'public' THEN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(TG_RELID) AS a WHERE a.relid = pg_catalog.to_regclass('"public"."articles"'))
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class AS c WHERE c.oid = TG_RELID AND c.relpersistence = 'p' AND pg_catalog.pg_has_role(c.relowner, 'USAGE')) THEN
      RAISE EXCEPTION 'The drizzle-pgpubsub trigger function of channel "articles" was generated for table "public"."articles" and may not fire for "%"."%"', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege', HINT = 'Renamed the table? Run drizzle-pgpubsub generate and apply its migration.';
    END IF;
  END IF;
  IF TG_LEVEL = 'ROW' THEN
    IF TG_OP = 'UPDATE' THEN
      BEGIN
        v_image := to_jsonb(OLD);
        v_image2 := to_jsonb(NEW);
      EXCEPTION WHEN OTHERS THEN
        BEGIN
      v_image := to_jsonb(OLD);
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        v_image := '{}';
        FOR v_key IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
          BEGIN
            EXECUTE format('SELECT to_jsonb(($1).%I)', v_key) INTO v_part USING OLD;
          EXCEPTION WHEN OTHERS THEN
            EXECUTE format('SELECT jsonb_build_object(%L, ($1).%I::text)', '$pgpubsub:json', v_key) INTO v_part USING OLD;
          END;
          v_image := v_image || jsonb_build_object(v_key, v_part);
        END LOOP;
      EXCEPTION WHEN OTHERS THEN
        v_image := NULL;
        v_error := 'drizzle-pgpubsub could not store the row image (too large or not representable as jsonb): ' || SQLERRM;
      END;
    END;
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
    IF TG_OP = 'DELETE' THEN
      BEGIN
        v_image := to_jsonb(OLD);
      EXCEPTION WHEN OTHERS THEN
        BEGIN
      v_image := to_jsonb(OLD);
    EXCEPTION WHEN OTHERS THEN
      BEGIN
        v_image := '{}';
        FOR v_key IN SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped ORDER BY attnum LOOP
          BEGIN
            EXECUTE format('SELECT to_jsonb(($1).%I)', v_key) INTO v_part USING OLD;
          EXCEPTION WHEN OTHERS THEN
            EXECUTE format('SELECT jsonb_build_object(%L, ($1).%I::text)', '$pgpubsub:json', v_key) INTO v_part USING OLD;
          END;
          v_image := v_image || jsonb_build_object(v_key, v_part);
        END LOOP;
      EXCEPTION WHEN OTHERS THEN
        v_image := NULL;
        v_error := 'drizzle-pgpubsub could not store the row image (too large or not representable as jsonb): ' || SQLERRM;
      END;
    END;
      END;
    END IF;
    INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
    VALUES ('articles', lower(TG_OP), v_image, v_image2, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb), CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END);
    -- Fired on a partition: no statement-level trigger of the parent sends the wake-up.
    IF TG_TABLE_NAME <> 'articles' OR TG_TABLE_SCHEMA <> 'public' THEN
      IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0))) THEN
        IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = 'articles' AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
          PERFORM pg_notify('articles', '');
        END IF;
      END IF;
    END IF;
    RETURN NULL;
  END IF;
  -- Nested IFs: a condition holding a subquery leaves plpgsql's fast path for simple expressions.
  IF TG_OP <> 'INSERT' THEN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhparent WHERE i.inhparent = TG_RELID AND c.relkind = 'r') THEN
      RAISE EXCEPTION 'Table "public"."articles" has inheritance children: drizzle-pgpubsub does not watch tables with inheritance (rows stored in a child fire no trigger of the parent). Use declarative partitioning, or watch each table itself.'
        USING ERRCODE = 'feature_not_supported';
    END IF;
  END IF;
  IF TG_OP = 'UPDATE' THEN
    v_count := 1;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
    VALUES ('articles', 'truncate', NULL, NULL, v_context, 'pending', NULL, NULL);
    v_count := 1;
  END IF;
  IF TG_OP = 'INSERT' THEN
    BEGIN
      v_images := ARRAY(SELECT to_jsonb(new.*) FROM pgpubsub_new AS new);
    EXCEPTION WHEN OTHERS THEN
      v_images := NULL;
    END;
    IF v_images IS NOT NULL THEN
      INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
      SELECT 'articles', 'insert', NULL, i, v_context, 'pending', NULL, NULL FROM unnest(v_images) AS i;
      GET DIAGNOSTICS v_count = ROW_COUNT;
    ELSE
      FOR r IN SELECT ROW(new.*)::"public"."articles" AS pgpubsub_row FROM pgpubsub_new AS new LOOP
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
        VALUES ('articles', 'insert', NULL, v_image, v_context, CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END);
        v_count := v_count + 1;
      END LOOP;
    END IF;
  END IF;
  IF TG_OP = 'DELETE' THEN
    BEGIN
      v_images := ARRAY(SELECT to_jsonb(old.*) FROM pgpubsub_old AS old);
    EXCEPTION WHEN OTHERS THEN
      v_images := NULL;
    END;
    IF v_images IS NOT NULL THEN
      INSERT INTO "pgpubsub"."notifications" ("channel", "op", "old", "new", "context", "status", "last_error", "failed_at")
      SELECT 'articles', 'delete', i, NULL, v_context, 'pending', NULL, NULL FROM unnest(v_images) AS i;
      GET DIAGNOSTICS v_count = ROW_COUNT;
    ELSE
      FOR r IN SELECT ROW(old.*)::"public"."articles" AS pgpubsub_row FROM pgpubsub_old AS old LOOP
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
        VALUES ('articles', 'delete', v_image, NULL, v_context, CASE WHEN v_error IS NULL THEN 'pending' ELSE 'failed' END, v_error, CASE WHEN v_error IS NULL THEN NULL ELSE now() END);
        v_count := v_count + 1;
      END LOOP;
    END IF;
  END IF;
  IF v_count > 0 THEN
    IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0))) THEN
      IF (coalesce(current_setting('pgpubsub.wake', true), '') <> 'off' AND CASE WHEN current_setting('transaction_isolation') = 'read committed'
    THEN EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = 'articles' AND w."idle" AND NOT pg_try_advisory_xact_lock_shared(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), w."key"))
    ELSE NOT (pg_try_advisory_lock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0) AND pg_advisory_unlock(hashtext('drizzle-pgpubsub wakeups "pgpubsub"'), 0)) END) THEN
        PERFORM pg_notify('articles', '');
      END IF;
    END IF;
  END IF;
  RETURN NULL;
END
$pgpubsub$;
--> statement-breakpoint
REVOKE ALL ON FUNCTION "pgpubsub"."ch_articles"() FROM PUBLIC;
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_articles_ins" ON "public"."articles";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_articles_upd" ON "public"."articles";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_articles_wake" ON "public"."articles";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_articles_del" ON "public"."articles";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_articles_trunc" ON "public"."articles";
--> statement-breakpoint
DO $pgpubsub$
DECLARE
  v_relkind "char" := (SELECT relkind FROM pg_catalog.pg_class WHERE oid = '"public"."articles"'::regclass);
BEGIN
  IF v_relkind = 'r' AND EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = '"public"."articles"'::regclass) THEN
    RAISE EXCEPTION 'Table "public"."articles" has inheritance children: drizzle-pgpubsub does not watch tables with inheritance (rows stored in a child fire no trigger of the parent). Use declarative partitioning, or watch each table itself.' USING ERRCODE = 'feature_not_supported';
  END IF;
  IF v_relkind = 'p' THEN
    EXECUTE 'CREATE TRIGGER "pgpubsub_articles_ins" AFTER INSERT ON "public"."articles" FOR EACH ROW EXECUTE FUNCTION "pgpubsub"."ch_articles"()';
  ELSE
    EXECUTE 'CREATE TRIGGER "pgpubsub_articles_ins" AFTER INSERT ON "public"."articles" REFERENCING NEW TABLE AS "pgpubsub_new" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_articles"()';
  END IF;
  IF v_relkind = 'p' THEN
    EXECUTE 'CREATE TRIGGER "pgpubsub_articles_del" AFTER DELETE ON "public"."articles" FOR EACH ROW EXECUTE FUNCTION "pgpubsub"."ch_articles"()';
  ELSE
    EXECUTE 'CREATE TRIGGER "pgpubsub_articles_del" AFTER DELETE ON "public"."articles" REFERENCING OLD TABLE AS "pgpubsub_old" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_articles"()';
  END IF;
END
$pgpubsub$;
--> statement-breakpoint
CREATE TRIGGER "pgpubsub_articles_upd" AFTER UPDATE ON "public"."articles" FOR EACH ROW EXECUTE FUNCTION "pgpubsub"."ch_articles"();
--> statement-breakpoint
CREATE TRIGGER "pgpubsub_articles_wake" AFTER UPDATE ON "public"."articles" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_articles"();
--> statement-breakpoint
CREATE TRIGGER "pgpubsub_articles_trunc" AFTER TRUNCATE ON "public"."articles" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_articles"();
