import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { describe, expectTypeOf, it } from 'vitest';
import { type CatchUp, createListener, type Schedule, type ScheduleOptions, schedule } from '../src/index.ts';
import { schedule as fromSchema } from '../src/schema.ts';

const db = drizzle({ client: postgres('postgres://localhost/none') });

describe('schedule types', () => {
  it('the handler gets the slot time and the declared payload, typed', () => {
    const nightly = schedule('nightly', '0 3 * * *', {
      timezone: 'Europe/Berlin',
      payload: { kind: 'full' },
    });
    expectTypeOf(nightly).toEqualTypeOf<Schedule<{ readonly kind: 'full' }>>();
    createListener(db).on(nightly, (event, tx) => {
      expectTypeOf(event.slot).toEqualTypeOf<Date>();
      expectTypeOf(event.payload).toEqualTypeOf<{ readonly kind: 'full' }>();
      expectTypeOf(event.attempt).toEqualTypeOf<number>();
      expectTypeOf(tx.execute).toBeFunction();
    });
  });

  it('without a payload, event.payload is null', () => {
    createListener(db).on(fromSchema('tick', '* * * * * *'), (event) => {
      expectTypeOf(event.payload).toEqualTypeOf<null>();
    });
  });

  it('options are typed', () => {
    expectTypeOf<ScheduleOptions<null>['catchUp']>().toEqualTypeOf<CatchUp | undefined>();
    // @ts-expect-error catchUp is 'latest' | 'all' | number
    schedule('x', '* * * * *', { catchUp: 'some' });
    // @ts-expect-error timezone is a string
    schedule('x', '* * * * *', { timezone: 1 });
  });
});
