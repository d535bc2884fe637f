import type postgres from 'postgres';
import type { ColumnCasing as Casing } from '../../src/casing.ts';
import type { AnyChannel } from '../../src/channel.ts';
import { createTriggerSql, resolveTriggerSpec } from '../../src/storage/trigger-sql.ts';

/** Installs the triggers of the given trigger channels, as a generated migration would. */
export async function installChannels(
  sql: postgres.Sql,
  channels: AnyChannel[],
  casing?: Casing,
): Promise<void> {
  for (const ch of channels) {
    if (ch.kind !== 'trigger') continue;
    for (const statement of createTriggerSql(resolveTriggerSpec(ch, casing))) await sql.unsafe(statement);
  }
}

/** Counts rows in the notifications table by status; the events of packed rows count as pending. */
export async function countNotifications(
  sql: postgres.Sql,
  channel?: string,
): Promise<{ pending: number; failed: number }> {
  const where = channel === undefined ? sql`true` : sql`channel = ${channel}`;
  const [row] = await sql`
    SELECT (count(*) FILTER (WHERE status = 'pending') + (SELECT coalesce(sum(count), 0) FROM pgpubsub.packed WHERE ${where}))::int AS pending,
      count(*) FILTER (WHERE status = 'failed')::int AS failed
    FROM pgpubsub.notifications WHERE ${where}`;
  return row as { pending: number; failed: number };
}
