import { cronOf, MISFIRE_GRACE_MS } from './schedule.ts';

/**
 * Slot arithmetic of schedules, pure (no database): which slots are due after the fence `lastSlot`
 * at time `now`, and when the next one comes. Slots are computed by croner in the schedule's time zone.
 */

/** A schedule as stored in the schedules table. */
export interface StoredSchedule {
  cron: string;
  timezone: string;
  catchUp: number;
}

/** What is due at `now`. */
export interface DueSlots {
  /** Slots to fire now, oldest first (may be empty when every due slot was missed and `catchUp` is 0). */
  fire: Date[];
  /** The new fence: the latest due slot (fired or skipped), or `null` when nothing is due. */
  fence: Date | null;
  /** Whether the catch-up policy skipped missed slots. */
  skipped: boolean;
  /** The first slot after `now` (`null`: the expression has no future slot). */
  next: Date | null;
}

/** The first slot strictly after `after`, or `null`. */
export function nextSlot(schedule: StoredSchedule, after: Date): Date | null {
  return cronOf(schedule.cron, schedule.timezone).nextRun(after);
}

/** The slots strictly after `after`, up to `limit` of them. */
export function slotsAfter(schedule: StoredSchedule, after: Date, limit: number): Date[] {
  return cronOf(schedule.cron, schedule.timezone).nextRuns(limit, after);
}

/**
 * The slots in `(lastSlot, now]` and what to do with them. Slots due within {@link MISFIRE_GRACE_MS}
 * of `now` are late and all fire; older ones were missed, and only the `catchUp` most recent of those
 * fire. Bounded work whatever the downtime: at most `catchUp` + 1 slots after the fence, `catchUp`
 * before the grace period, and the slots of the grace period are enumerated.
 */
export function dueSlots(schedule: StoredSchedule, lastSlot: Date, now: Date): DueSlots {
  const cron = cronOf(schedule.cron, schedule.timezone);
  const first = cron.nextRun(lastSlot);
  if (first === null || first.getTime() > now.getTime()) {
    return { fire: [], fence: null, skipped: false, next: first };
  }
  const graceStart = new Date(Math.max(lastSlot.getTime(), now.getTime() - MISFIRE_GRACE_MS));
  // Late slots: (graceStart, now]; a seconds cron has at most 60 of them.
  const late: Date[] = [];
  for (let at = cron.nextRun(graceStart); at && at.getTime() <= now.getTime(); at = cron.nextRun(at)) {
    late.push(at);
  }
  // Missed slots: (lastSlot, graceStart]; keep the catchUp most recent. Walk forward from the fence
  // while there are at most catchUp of them (short downtimes), else take the latest from graceStart.
  let missed: Date[] = [];
  let skipped = false;
  const forward: Date[] = [];
  for (
    let at = cron.nextRun(lastSlot);
    at && at.getTime() <= graceStart.getTime() && forward.length <= schedule.catchUp;
    at = cron.nextRun(at)
  ) {
    forward.push(at);
  }
  if (forward.length <= schedule.catchUp) missed = forward;
  else {
    skipped = true;
    missed =
      schedule.catchUp === 0
        ? []
        : cron.previousRuns(schedule.catchUp, new Date(graceStart.getTime() + 1)).reverse();
  }
  const fire = [...missed, ...late];
  const fence =
    late.at(-1) ?? missed.at(-1) ?? cron.previousRuns(1, new Date(graceStart.getTime() + 1))[0] ?? null;
  return { fire, fence, skipped, next: cron.nextRun(now) };
}
