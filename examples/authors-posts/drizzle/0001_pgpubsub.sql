-- Written by `drizzle-pgpubsub generate`. Do not edit: change your channels and run it again.
-- drizzle-pgpubsub:storage {"version":2,"schema":"pgpubsub"}
-- drizzle-pgpubsub:channel {"name":"authors","hash":"749563b721eb7435","tableSchema":"public","table":"authors"}
CREATE SCHEMA IF NOT EXISTS "pgpubsub";
--> statement-breakpoint
CREATE TABLE IF NOT EXISTS "pgpubsub"."notifications" (
  "id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  "channel" text NOT NULL,
  "op" text CHECK ("op" IN ('insert', 'update', 'delete')),
  "old" jsonb,
  "new" jsonb,
  "payload" jsonb,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "status" text NOT NULL DEFAULT 'pending' CHECK ("status" IN ('pending', 'failed')),
  "attempts" integer NOT NULL DEFAULT 0,
  "run_at" timestamptz NOT NULL DEFAULT now(),
  "created_at" timestamptz NOT NULL DEFAULT now(),
  "last_error" text,
  "failed_at" timestamptz
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0);
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_claim_idx" ON "pgpubsub"."notifications" ("channel", "run_at", "id") WHERE "status" = 'pending';
--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "notifications_failed_idx" ON "pgpubsub"."notifications" ("channel", "failed_at") WHERE "status" = 'failed';
--> statement-breakpoint
CREATE UNLOGGED TABLE IF NOT EXISTS "pgpubsub"."wakeups" ("channel" text PRIMARY KEY, "idle" boolean NOT NULL);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."notify"("p_channel" text, "p_payload" jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO "pgpubsub"."notifications" ("channel", "payload", "context")
  VALUES (p_channel, p_payload, coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb))
  RETURNING "id" INTO v_id;
  IF (current_setting('transaction_isolation') <> 'read committed' OR EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = p_channel AND w."idle")) THEN
    PERFORM pg_notify(p_channel, '');
  END IF;
  RETURN v_id;
END
$pgpubsub$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "pgpubsub"."ch_authors"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgpubsub$
#variable_conflict use_column
DECLARE
  v_context jsonb := coalesce(nullif(current_setting('pgpubsub.context', true), '')::jsonb, '{}'::jsonb);
  v_count bigint := 0;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO "pgpubsub"."notifications" ("channel", "op", "new", "context")
    SELECT 'authors', 'insert', to_jsonb(new), v_context FROM pgpubsub_new AS new;
    GET DIAGNOSTICS v_count = ROW_COUNT;
  END IF;
  IF v_count > 0 AND (current_setting('transaction_isolation') <> 'read committed' OR EXISTS (SELECT 1 FROM "pgpubsub"."wakeups" w WHERE w."channel" = 'authors' AND w."idle")) THEN
    PERFORM pg_notify('authors', '');
  END IF;
  RETURN NULL;
END
$pgpubsub$;
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_ins" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_upd" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_wake" ON "public"."authors";
--> statement-breakpoint
DROP TRIGGER IF EXISTS "pgpubsub_authors_del" ON "public"."authors";
--> statement-breakpoint
CREATE TRIGGER "pgpubsub_authors_ins" AFTER INSERT ON "public"."authors" REFERENCING NEW TABLE AS "pgpubsub_new" FOR EACH STATEMENT EXECUTE FUNCTION "pgpubsub"."ch_authors"();
