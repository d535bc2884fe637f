/**
 * Least privilege (docs/security.md): a migration role without superuser owns the storage and the
 * triggers; an application role with rights on its own tables only records notifications through
 * the triggers; notify() needs USAGE on the schema and EXECUTE on pgpubsub.notify, nothing else; a
 * listener role with the documented grants runs a listener end to end.
 */
import { randomBytes } from 'node:crypto';
import { sql as dsql, eq } from 'drizzle-orm';
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channel, triggerChannel } from '../src/channel.ts';
import { notify, withContext } from '../src/notify.ts';
import { createListener } from '../src/runtime/listener.ts';
import { storageMigrationSql } from '../src/storage/notifications.ts';
import { createTriggerSql, resolveTriggerSpec } from '../src/storage/trigger-sql.ts';
import { countNotifications } from './support/channels.ts';
import { useTestDatabase } from './support/db.ts';
import { waitFor } from './support/wait-for.ts';

const t = useTestDatabase();

const suffix = randomBytes(3).toString('hex');
const ROLES = {
  migration: `pgpubsub_migrator_${suffix}`,
  app: `pgpubsub_app_${suffix}`,
  listener: `pgpubsub_listener_${suffix}`,
};
const PASSWORD = 'pw-not-secret';

const orders = pgTable('orders', {
  id: serial().primaryKey(),
  item: text().notNull(),
  qty: integer().notNull(),
});
const shipments = pgTable('shipments', { id: serial().primaryKey(), orderId: integer('order_id').notNull() });
const orderEvents = triggerChannel(orders, { on: ['insert', 'update', 'delete'] });
const mail = channel('mail_requested', v.object({ to: v.string() }));

/** The grants docs/security.md lists, applied by the migration role (the owner of everything). */
function grantsSql(): string[] {
  return [
    // Application role: its own tables only. The triggers write the notifications as their owner.
    `GRANT SELECT, INSERT, UPDATE, DELETE ON orders, shipments TO ${ROLES.app}`,
    `GRANT USAGE ON SEQUENCE orders_id_seq, shipments_id_seq TO ${ROLES.app}`,
    // Listener role.
    `GRANT USAGE ON SCHEMA pgpubsub TO ${ROLES.listener}`,
    `GRANT SELECT, UPDATE, DELETE ON pgpubsub.notifications TO ${ROLES.listener}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON pgpubsub.wakeups TO ${ROLES.listener}`,
    // Storage version 5: packed notifications of trigger channels (read, and expanded by the function).
    `GRANT SELECT ON pgpubsub.packed TO ${ROLES.listener}`,
    `GRANT EXECUTE ON FUNCTION pgpubsub.expand_packed(text, jsonb) TO ${ROLES.listener}`,
    // ...plus what its handlers do (here: create shipments, read orders).
    `GRANT SELECT ON orders TO ${ROLES.listener}`,
    `GRANT INSERT ON shipments TO ${ROLES.listener}`,
    `GRANT USAGE ON SEQUENCE shipments_id_seq TO ${ROLES.listener}`,
    // Only the roles that send custom notifications may call notify().
    `REVOKE EXECUTE ON FUNCTION pgpubsub.notify(text, jsonb) FROM PUBLIC`,
    `REVOKE EXECUTE ON FUNCTION pgpubsub.notify(text, jsonb, text) FROM PUBLIC`,
    `REVOKE EXECUTE ON FUNCTION pgpubsub.notify_many(text, jsonb, jsonb) FROM PUBLIC`,
  ];
}

/** The PostgreSQL error message under Drizzle's "Failed query" wrapper. */
async function denied(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    const e = error as Error & { cause?: Error };
    return (e.cause ?? e).message;
  }
  return 'no error';
}

/** The URL of this file's database as `role`. */
function roleUrl(role: string): string {
  const url = new URL(t.url);
  url.username = role;
  url.password = PASSWORD;
  return url.toString();
}

/** A Drizzle database on the test driver (PGPUBSUB_TEST_DRIVER), logged in as `role`. */
const dbAs = (role: string, max: number) => t.drizzle(max, {}, roleUrl(role));

const clients: postgres.Sql[] = [];
function connectAs(role: string, options: postgres.Options<{}> = {}): postgres.Sql {
  const url = new URL(t.url);
  url.username = role;
  url.password = PASSWORD;
  const client = postgres(url.toString(), { onnotice: () => {}, ...options });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  for (const role of Object.values(ROLES)) {
    await t.sql.unsafe(
      `CREATE ROLE ${role} LOGIN PASSWORD '${PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE`,
    );
  }
  // Start from an empty database (the template has the storage, created by the superuser).
  await t.sql.unsafe('DROP SCHEMA pgpubsub CASCADE');
  // The migration role needs: CREATE on the database (the pgpubsub schema) and on the schema of the
  // application tables, which it owns (creating triggers needs the table's owner or TRIGGER).
  await t.sql.unsafe(`GRANT CREATE ON DATABASE "${t.name}" TO ${ROLES.migration}`);
  await t.sql.unsafe(`GRANT CREATE ON SCHEMA public TO ${ROLES.migration}`);
  const migrator = connectAs(ROLES.migration, { max: 1 });
  for (const statement of [
    ...storageMigrationSql(),
    'CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty integer NOT NULL)',
    'CREATE TABLE shipments (id serial PRIMARY KEY, order_id integer NOT NULL)',
    ...createTriggerSql(resolveTriggerSpec(orderEvents)),
    ...grantsSql(),
  ]) {
    await migrator.unsafe(statement);
  }
  await migrator.end();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end({ timeout: 2 })));
  for (const role of Object.values(ROLES)) {
    await t.sql.unsafe(`DROP OWNED BY ${role} CASCADE`);
    await t.sql.unsafe(`DROP ROLE ${role}`);
  }
});

describe('least privilege', () => {
  it('needs no superuser: the migration role owns the storage, and every function is SECURITY DEFINER with a pinned search_path', async () => {
    const roles =
      await t.sql`SELECT rolname, rolsuper FROM pg_roles WHERE rolname = ANY(${Object.values(ROLES)})`;
    expect(roles.every((r) => r.rolsuper === false)).toBe(true);
    const functions = await t.sql`
      SELECT p.proname, pg_get_userbyid(p.proowner) AS owner, p.prosecdef, p.proconfig
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgpubsub' ORDER BY 1`;
    // notify(text, jsonb), notify(text, jsonb, text) (ordered channels), notify_many (jobs, bulk),
    // expand_packed (storage version 5: listeners expand packed rows).
    expect(functions.map((f) => f.proname)).toEqual([
      'ch_orders',
      'expand_packed',
      'notify',
      'notify',
      'notify_many',
    ]);
    for (const f of functions) {
      expect(f).toMatchObject({ owner: ROLES.migration, prosecdef: true });
      expect(f.proconfig[0]).toBe('search_path=pg_catalog, pg_temp');
    }
    // Trigger functions also pin the settings row images depend on (issue 14, item 17), and nobody
    // but their owner may attach them to a table (item 1: EXECUTE revoked from PUBLIC).
    expect(functions[0]!.proconfig).toEqual([
      'search_path=pg_catalog, pg_temp',
      'DateStyle=ISO, MDY',
      'IntervalStyle=postgres',
      'extra_float_digits=1',
      'TimeZone=UTC',
      'bytea_output=hex',
    ]);
    const [acl] = await t.sql`SELECT proacl::text[] AS acl FROM pg_proc WHERE proname = 'ch_orders'`;
    expect(acl!.acl).toEqual([`${ROLES.migration}=X/${ROLES.migration}`]);
    const tables = await t.sql`
      SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgpubsub' AND c.relkind = 'r' ORDER BY 1`;
    expect(tables).toEqual([
      { relname: 'backfills', owner: ROLES.migration },
      { relname: 'notifications', owner: ROLES.migration },
      { relname: 'packed', owner: ROLES.migration },
      { relname: 'schedules', owner: ROLES.migration },
      { relname: 'wakeups', owner: ROLES.migration },
    ]);
  });

  it('lets an application role with no rights on pgpubsub record notifications through the triggers', async () => {
    const app = dbAs(ROLES.app, 2);
    await app.transaction(async (tx) => {
      await withContext(tx, { actor: 'app' });
      const [order] = await tx.insert(orders).values({ item: 'book', qty: 1 }).returning();
      await tx.update(orders).set({ qty: 2 }).where(eq(orders.id, order!.id));
    });
    await app.delete(orders).where(eq(orders.item, 'book'));
    const rows =
      await t.sql`SELECT op, context FROM pgpubsub.notifications WHERE channel = 'orders' ORDER BY id`;
    expect(rows).toEqual([
      { op: 'insert', context: { actor: 'app' } },
      { op: 'update', context: { actor: 'app' } },
      { op: 'delete', context: {} },
    ]);
    // ...and it can neither read, write nor call anything in the schema.
    expect(await denied(() => app.execute(dsql`SELECT count(*) FROM pgpubsub.notifications`))).toMatch(
      /permission denied for schema pgpubsub/,
    );
    expect(await denied(() => notify(app, mail, { to: 'a@b.c' }))).toMatch(
      /permission denied for schema pgpubsub/,
    );
    await t.sql`DELETE FROM pgpubsub.notifications`;
  });

  it('lets a role call notify() with USAGE on the schema and EXECUTE on pgpubsub.notify, and nothing else', async () => {
    const sender = `pgpubsub_sender_${suffix}`;
    await t.sql.unsafe(`CREATE ROLE ${sender} LOGIN PASSWORD '${PASSWORD}'`);
    const owner = connectAs(ROLES.migration, { max: 1 });
    await owner.unsafe(`GRANT USAGE ON SCHEMA pgpubsub TO ${sender}`);
    const db = drizzle({ client: connectAs(sender, { max: 1 }) });
    // USAGE alone is not enough: EXECUTE was revoked from PUBLIC.
    expect(await denied(() => notify(db, mail, { to: 'a@b.c' }))).toMatch(
      /permission denied for function notify/,
    );
    await owner.unsafe(`GRANT EXECUTE ON FUNCTION pgpubsub.notify(text, jsonb) TO ${sender}`);
    await db.transaction(async (tx) => {
      await withContext(tx, { actor: 'sender' });
      await notify(tx, mail, { to: 'a@b.c' });
    });
    expect(
      await t.sql`SELECT payload, context FROM pgpubsub.notifications WHERE channel = 'mail_requested'`,
    ).toEqual([{ payload: { to: 'a@b.c' }, context: { actor: 'sender' } }]);
    // Job options and arrays go through pgpubsub.notify_many: EXECUTE on it as well.
    expect(await denied(() => notify(db, mail, [{ to: 'b@b.c' }]))).toMatch(
      /permission denied for function notify_many/,
    );
    await owner.unsafe(`GRANT EXECUTE ON FUNCTION pgpubsub.notify_many(text, jsonb, jsonb) TO ${sender}`);
    const sent = await notify(db, mail, [{ to: 'b@b.c' }, { to: 'c@b.c' }], {
      key: (p) => p.to,
      priority: 2,
      delayMs: 60_000,
    });
    expect(sent.results.map((r) => r.outcome)).toEqual(['inserted', 'inserted']);
    await t.sql`DELETE FROM pgpubsub.notifications WHERE channel = 'mail_requested' AND dedup_key IS NOT NULL`;
    expect(await denied(() => db.execute(dsql`SELECT * FROM pgpubsub.notifications`))).toMatch(
      /permission denied for table notifications/,
    );
    expect(
      await denied(() =>
        db.execute(
          dsql`INSERT INTO pgpubsub.notifications (channel, payload) VALUES ('mail_requested', '{}')`,
        ),
      ),
    ).toMatch(/permission denied for table notifications/);
    await t.sql`DELETE FROM pgpubsub.notifications`;
    await t.sql.unsafe(`DROP OWNED BY ${sender} CASCADE`);
    await owner.end();
    clients.splice(clients.indexOf(owner), 1);
    const senderClient = clients.pop()!;
    await senderClient.end();
    await t.sql.unsafe(`DROP ROLE ${sender}`);
  });

  it('runs a listener end to end as a role with only the documented grants', async () => {
    const app = dbAs(ROLES.app, 2);
    const listenerDb = dbAs(ROLES.listener, 4);
    const seen: string[] = [];
    let failOnce = true;
    const errors: string[] = [];
    const listener = createListener(listenerDb, {
      pollIntervalMs: 1000,
      backoff: () => 0,
      maxAttempts: 2,
    }).on(orderEvents, async (event, tx) => {
      if (event.op !== 'insert') return;
      const [order] = await tx.select().from(orders).where(eq(orders.id, event.new.id));
      if (order?.item === 'poison') throw new Error('poison order');
      if (order?.item === 'flaky' && failOnce) {
        failOnce = false;
        throw new Error('flaky once');
      }
      await tx.insert(shipments).values({ orderId: event.new.id });
      seen.push(event.new.item);
    });
    listener.events.on('error', (e) => errors.push(`${e.during}: ${(e.error as Error).message}`));
    await listener.start();
    try {
      await app.insert(orders).values([
        { item: 'pen', qty: 1 },
        { item: 'flaky', qty: 1 },
        { item: 'poison', qty: 1 },
      ]);
      const shipped = async () => (await t.sql`SELECT count(*)::int AS n FROM shipments`)[0]!.n as number;
      await waitFor(
        async () => (await shipped()) === 2 && (await countNotifications(t.sql, 'orders')).failed === 1,
        {
          what: 'two orders shipped and one dead letter',
          timeoutMs: 20_000,
        },
      );
      // Idle now (flag set through wakeups): a new write wakes it through NOTIFY.
      await app.insert(orders).values({ item: 'late', qty: 1 });
      await waitFor(async () => (await shipped()) === 3, {
        what: 'the order written while the listener slept',
      });
      expect(seen.sort()).toEqual(['flaky', 'late', 'pen']);
      expect(errors).toEqual([]);
      expect(await countNotifications(t.sql, 'orders')).toEqual({ pending: 0, failed: 1 });
      const [dead] =
        await t.sql`SELECT attempts, last_error FROM pgpubsub.notifications WHERE status = 'failed'`;
      expect(dead!.attempts).toBe(2);
      expect(dead!.last_error).toContain('poison order');
    } catch (error) {
      throw new Error(`${(error as Error).message}; listener errors: ${[...new Set(errors)].join(' | ')}`);
    } finally {
      await listener.stop({ timeoutMs: 2000 });
    }
    // The listener role has no business inserting notifications or touching the application's rows.
    expect(
      await denied(() =>
        listenerDb.execute(dsql`INSERT INTO pgpubsub.notifications (channel) VALUES ('orders')`),
      ),
    ).toMatch(/permission denied/);
    expect(await denied(() => listenerDb.delete(orders))).toMatch(/permission denied/);
  });
});
