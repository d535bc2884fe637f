import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as v from 'valibot';
import { describe, expectTypeOf, it } from 'vitest';
import {
  type BroadcastResult,
  type BulkNotifyResult,
  channel,
  type NotifyOutcome,
  type NotifyResult,
  notify,
} from '../src/index.ts';

const db = drizzle({ client: postgres('postgres://localhost/none') });
const jobs = channel('jobs', v.object({ id: v.number() }));
const live = channel('live', v.object({ id: v.number() }), { broadcast: true });

describe('notify() result types', () => {
  it('one payload: the id and what happened', () => {
    expectTypeOf(notify(db, jobs, { id: 1 })).resolves.toEqualTypeOf<NotifyResult>();
    expectTypeOf(
      notify(db, jobs, { id: 1 }, { key: 'k', onDuplicate: 'replace', delayMs: 5, priority: 2 }),
    ).resolves.toEqualTypeOf<NotifyResult>();
    expectTypeOf<NotifyResult['id']>().toEqualTypeOf<bigint>();
    expectTypeOf<NotifyResult['outcome']>().toEqualTypeOf<NotifyOutcome>();
    expectTypeOf<NotifyOutcome>().toEqualTypeOf<'inserted' | 'skipped' | 'replaced'>();
  });

  it('an array: ids and one result per payload; the key is a function of the payload', () => {
    expectTypeOf(notify(db, jobs, [{ id: 1 }, { id: 2 }])).resolves.toEqualTypeOf<BulkNotifyResult>();
    notify(db, jobs, [{ id: 1 }], {
      key: (payload, index) => {
        expectTypeOf(payload).toEqualTypeOf<{ id: number }>();
        expectTypeOf(index).toEqualTypeOf<number>();
        return `job-${payload.id}`;
      },
      runAt: new Date(),
    });
    expectTypeOf<BulkNotifyResult['ids']>().toEqualTypeOf<bigint[]>();
    // @ts-expect-error a bulk key is a function, not one string for all payloads
    notify(db, jobs, [{ id: 1 }], { key: 'same' });
    // @ts-expect-error every payload is checked against the schema
    notify(db, jobs, [{ id: 1 }, { id: 'two' }]);
  });

  it('broadcast channels take no job options and return no id', () => {
    expectTypeOf(notify(db, live, { id: 1 })).resolves.toEqualTypeOf<BroadcastResult>();
    expectTypeOf<BroadcastResult['id']>().toEqualTypeOf<null>();
    // @ts-expect-error a broadcast stores nothing: no delay
    notify(db, live, { id: 1 }, { delayMs: 5 });
    // @ts-expect-error onDuplicate is one of skip | replace
    notify(db, jobs, { id: 1 }, { key: 'k', onDuplicate: 'ignore' });
  });
});
