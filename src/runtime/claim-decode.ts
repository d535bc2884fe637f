import type postgres from 'postgres';
import type { TriggerChannel, TriggerOp } from '../channel.ts';
import { PgPubSubError } from '../errors.ts';
import type { EventMeta } from '../events.ts';
import { isSchedule, type StoredSlot } from '../schedule.ts';
import { formatIssues, type StandardSchemaV1 } from '../standard-schema.ts';
import { orderModeOf } from '../storage/ordered.ts';
import {
  type ClaimWindow,
  claimSql,
  decodeOneSql,
  META_COUNT,
  mergeSides,
  PREPARED,
  rawClaimSql,
} from './claim-sql.ts';
import type { ClaimContext, Registration } from './claim-types.ts';
import { environmentError, isWide, mapRow } from './decode.ts';

export interface Claimed {
  meta: Omit<EventMeta, 'signal'>;
  /** `run_at` in epoch microseconds (text), for the claim cursor. */
  cursor: string;
  /** The event body: payload, or op/old/new; `undefined` with `poison` set when it cannot be built. */
  body: Record<string, unknown> | undefined;
  poison?: unknown;
}

function metaOf(row: unknown[], channel: string): Omit<EventMeta, 'signal'> {
  return {
    id: row[0] as string,
    channel,
    context: (row[2] ?? {}) as Record<string, unknown>,
    attempt: (row[3] as number) + 1,
    createdAt: new Date(row[4] as number),
  };
}

const IMAGES: Record<TriggerOp | 'snapshot', [boolean, boolean]> = {
  insert: [false, true],
  update: [true, true],
  delete: [true, false],
  truncate: [false, false],
  snapshot: [false, true],
};

/**
 * The op/old/new of a trigger event. Rows the channel's trigger did not write (by hand, or for an op
 * the channel no longer handles) are refused: handlers are typed to get only what the trigger sends.
 */
function triggerBody(
  reg: Registration,
  op: unknown,
  values: unknown[],
  offset: number,
): Record<string, unknown> {
  const d = reg.decoder!;
  const ops = (reg.channel as TriggerChannel<any, any>).ops as readonly unknown[];
  // Every trigger channel takes `snapshot` events (written by backfill()).
  if (op !== 'snapshot' && !ops.includes(op)) {
    throw new PgPubSubError(
      'DECODE_FAILED',
      `The notification's op is ${JSON.stringify(op)}, but channel "${reg.channel.name}" handles ${ops.join(', ')} only.`,
    );
  }
  const hasOld = values[offset] === true;
  const newOffset = offset + 1 + d.columns.length;
  const hasNew = values[newOffset] === true;
  const [needOld, needNew] = IMAGES[op as TriggerOp | 'snapshot'];
  if (hasOld !== needOld || hasNew !== needNew) {
    throw new PgPubSubError(
      'DECODE_FAILED',
      `An ${op} notification carries ${needOld ? 'an old' : 'no old'} and ${needNew ? 'a new' : 'no new'} row image; this one has ${hasOld ? 'an old' : 'no old'} and ${hasNew ? 'a new' : 'no new'}. It was not written by the channel's trigger.`,
    );
  }
  return {
    op,
    old: hasOld ? mapRow(d, values, offset + 1) : null,
    new: hasNew ? mapRow(d, values, newOffset + 1) : null,
  };
}

function payloadBody(result: StandardSchemaV1.Result<unknown>): Record<string, unknown> {
  if (result.issues) {
    throw new PgPubSubError(
      'INVALID_PAYLOAD',
      `Stored payload does not match the channel's schema: ${formatIssues(result.issues)}`,
    );
  }
  return { payload: result.value };
}

/** A schedule's event: its slot time and the schedule's payload, at the top level of the event. */
function slotBody(body: Record<string, unknown>): Record<string, unknown> {
  const { slot, payload } = body.payload as StoredSlot;
  return { slot: new Date(slot), payload };
}

/** Validates a stored payload; synchronous for synchronous schemas (valibot, zod), so no microtask per row. */
function validatePayload(
  reg: Registration,
  payload: unknown,
): Record<string, unknown> | Promise<Record<string, unknown>> {
  if (reg.channel.kind !== 'custom') throw new Error('unreachable');
  const result = reg.channel.schema['~standard'].validate(payload);
  if (isSchedule(reg.channel)) {
    return result instanceof Promise
      ? result.then((r) => slotBody(payloadBody(r)))
      : slotBody(payloadBody(result));
  }
  return result instanceof Promise ? result.then(payloadBody) : payloadBody(result);
}

export function claimParams(ctx: ClaimContext, name: string, window: ClaimWindow): unknown[] {
  const params: unknown[] = ctx.filter === null ? [name] : [name, ctx.filter];
  if (window.after) params.push(window.after.runAtUs, window.after.id);
  return params;
}

export async function decodeBatch(
  tsql: postgres.ReservedSql,
  reg: Registration,
  ctx: ClaimContext,
  window: ClaimWindow,
  safe: boolean,
): Promise<Claimed[]> {
  const name = reg.channel.name;
  const params = claimParams(ctx, name, window) as any[];
  if (!safe || !reg.decoder) {
    let rows = (await tsql
      .unsafe(
        claimSql(reg, ctx.table, ctx.filter !== null, window, ctx.batchBytes, orderModeOf(reg.channel)),
        params,
        PREPARED,
      )
      .values()
      .catch((error) => {
        throw (reg.decoder && environmentError(reg.decoder, name, error)) ?? error;
      })) as unknown[][];
    if (reg.decoder && isWide(reg.decoder, META_COUNT)) rows = mergeSides(rows, META_COUNT);
    const out: Claimed[] = [];
    let pending: Promise<unknown>[] | undefined;
    for (const row of rows) {
      const item: Claimed = { meta: metaOf(row, name), body: undefined, cursor: row[5] as string };
      out.push(item);
      try {
        const body = reg.decoder
          ? triggerBody(reg, row[1], row, META_COUNT)
          : validatePayload(reg, row[META_COUNT]);
        if (body instanceof Promise) {
          pending ??= [];
          pending.push(
            body.then(
              (b) => {
                item.body = b;
              },
              (poison) => {
                item.poison = poison;
              },
            ),
          );
        } else {
          item.body = body;
        }
      } catch (poison) {
        item.poison = poison;
      }
    }
    if (pending) await Promise.all(pending);
    return out;
  }
  const decoder = reg.decoder;
  const rows = (await tsql
    .unsafe(
      rawClaimSql(ctx.table, ctx.filter !== null, window, ctx.batchBytes, orderModeOf(reg.channel)),
      params,
      PREPARED,
    )
    .values()) as unknown[][];
  const out: Claimed[] = [];
  for (const row of rows) {
    const meta = metaOf(row, name);
    const cursor = row[5] as string;
    await tsql.unsafe('SAVEPOINT pgpubsub_decode');
    let values: unknown[];
    try {
      const decoded = await tsql.unsafe(decodeOneSql(decoder), [row[6], row[7]] as any[]).values();
      values = mergeSides(decoded as unknown[][], 0)[0]!;
      await tsql.unsafe('RELEASE SAVEPOINT pgpubsub_decode');
    } catch (error) {
      await tsql.unsafe('ROLLBACK TO SAVEPOINT pgpubsub_decode');
      // A missing grant is the listener's problem, not the image's: fail the claim (retried later).
      const environment = environmentError(decoder, name, error);
      if (environment) throw environment;
      const reason = new PgPubSubError(
        'DECODE_FAILED',
        `The row image cannot be decoded into ${decoder.rowType}: ${(error as Error).message}`,
        { cause: error },
      );
      out.push({ meta, body: undefined, poison: reason, cursor });
      continue;
    }
    try {
      out.push({ meta, body: triggerBody(reg, row[1], values, 0), cursor });
    } catch (poison) {
      out.push({ meta, body: undefined, poison, cursor });
    }
  }
  return out;
}
