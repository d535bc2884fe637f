/**
 * Why this file is over 300 lines: the Scheduler is one state machine (launch, claim, learn, go idle,
 * sweep) whose methods share its counters; its pure rules live in pacing.ts and the idle protocol in
 * idle.ts, and splitting the rest would spread one invariant (`running`/`inflight` bookkeeping) over files.
 */
import type postgres from 'postgres';
import type { ListenerEvents } from '../events.ts';
import { orderModeOf } from '../storage/ordered.ts';
import { MAX_TIMER_MS, waitAtMost } from '../timeouts.ts';
import { retryDelay, withProblem } from './backoff.ts';
import { claimBatch } from './claim.ts';
import type { Claimed } from './claim-decode.ts';
import { type ClaimWindow, recordFailures } from './claim-sql.ts';
import type { ClaimContext, ClaimCursor, ClaimOutcome, Registration } from './claim-types.ts';
import { isConnectionLost } from './connection-errors.ts';
import type { IdleProtocol } from './idle.ts';
import { claimLeased, runLeased } from './lease.ts';
import {
  batchLimit,
  type ChannelState,
  errorBackoffMs,
  isAfter,
  isLead,
  learn,
  newChannelState,
} from './pacing.ts';

/** Settings the scheduler reads. */
export interface SchedulerSettings {
  concurrency: number;
  batchSize: number;
  idleWaitMs: number;
  pollIntervalMs: number | false;
}

/** Totals of a {@link Scheduler.drain} run. */
export interface DrainSummary {
  processed: number;
  /** Failed attempts that will be retried later. */
  retried: number;
  /** Notifications that became dead letters. */
  dead: number;
  byChannel: Record<string, { processed: number; retried: number; dead: number }>;
}

/**
 * Decides when to claim which channel. Claims run on up to `concurrency` connections at once; a
 * channel whose batch comes back full is claimed again at once (and in parallel), one whose batch
 * comes back short goes idle through the wake-up protocol (see idle.ts).
 */
export class Scheduler {
  private readonly states = new Map<string, ChannelState>();
  private running = 0;
  private active = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly background = new Set<Promise<unknown>>();
  private settled: (() => void) | undefined;
  /** Lease handlers running now, all channels (they count for stop(), not for `concurrency`). */
  private leaseTotal = 0;
  /** When a claim last took work (epoch ms; the listener's presence), `null` before the first. */
  lastClaimAt: number | null = null;
  /** Notifications handled (processed) so far. */
  handled = 0;

  constructor(
    private readonly sql: postgres.Sql,
    private readonly ctx: ClaimContext,
    private readonly idle: IdleProtocol,
    private readonly settings: SchedulerSettings,
    private readonly events: ListenerEvents,
    registrations: Iterable<Registration>,
  ) {
    for (const reg of registrations) {
      this.states.set(reg.channel.name, newChannelState(reg));
    }
  }

  /** Starts claiming every channel (recovery) and the safety sweep. */
  start(): void {
    this.active = true;
    const interval = this.settings.pollIntervalMs;
    if (interval !== false && interval > 0) {
      this.sweepTimer = setInterval(() => this.track(this.sweep()), interval);
      this.sweepTimer.unref?.();
    }
    this.pump();
  }

  /** A NOTIFY hint arrived for a channel. */
  hint(name: string): void {
    const state = this.states.get(name);
    if (!state) return;
    this.idle.hint(name);
    this.markDirty(state);
  }

  /**
   * A delayed notification is due at `at` (a NOTIFY `at:<ms>`): wake the channel then. Nothing is
   * claimed now and the idle flag stays set (the listener still sleeps; producers keep waking it).
   */
  hintAt(name: string, at: number): void {
    const state = this.states.get(name);
    if (!state) return;
    this.scheduleAt(state, at);
  }

  /** The LISTEN connection (re)connected: sweep, and set the flag again (it may be gone after a crash). */
  reconnected(name: string): void {
    const state = this.states.get(name);
    if (!state) return;
    this.idle.reconnected(name);
    this.markDirty(state);
  }

  /** Stops claiming; resolves when in-flight claims are done or `timeoutMs` passed (returns how many remain). */
  async quiesce(timeoutMs: number): Promise<number> {
    this.active = false;
    clearInterval(this.sweepTimer);
    for (const state of this.states.values()) clearTimeout(state.timer);
    if (this.idleNow()) return 0;
    const settled = new Promise<void>((resolve) => {
      this.settled = resolve;
    });
    return (await waitAtMost(settled, timeoutMs, { unref: false })) ? 0 : this.running + this.leaseTotal;
  }

  /**
   * Waits for claims and background work (flag updates, probes) to finish, at most `limitMs`: after
   * an abort a claim on a half-open connection may never answer. Whatever is left finishes (or fails)
   * on its own; it is transactional, and nothing new is started.
   */
  async settle(limitMs: number): Promise<void> {
    const claims = (async () => {
      while (!this.idleNow()) await new Promise<void>((resolve) => (this.settled = resolve));
    })();
    const rest = Promise.allSettled([claims, ...this.background, ...this.idle.pendingWrites()]);
    await waitAtMost(rest, limitMs);
  }

  /** Claims every channel until nothing is ready. For tests; the listener must not be started. */
  async drain(): Promise<DrainSummary> {
    const summary: DrainSummary = { processed: 0, retried: 0, dead: 0, byChannel: {} };
    // Nothing probes between drain()'s claims: each one looks for packed rows itself.
    this.ctx.expandEveryClaim = true;
    try {
      await this.drainClaims(summary);
    } finally {
      this.ctx.expandEveryClaim = false;
    }
    for (const entry of Object.values(summary.byChannel)) {
      summary.processed += entry.processed;
      summary.retried += entry.retried;
      summary.dead += entry.dead;
    }
    return summary;
  }

  private async drainClaims(summary: DrainSummary): Promise<void> {
    let progress = true;
    while (progress) {
      progress = false;
      for (const state of this.states.values()) {
        const leased: Claimed[] = [];
        const reg = state.reg;
        const limit =
          reg.leaseMs === undefined
            ? this.limitFor(state)
            : Math.min(this.limitFor(state), reg.concurrency ?? this.settings.concurrency);
        const outcome = await this.claimOnce(state, { limit }, undefined, leased);
        for (const run of await Promise.all(leased.map((item) => this.runLease(state, item)))) {
          outcome?.processed.push(...(run?.processed ?? []));
          outcome?.failed.push(...(run?.failed ?? []));
        }
        if (!outcome) {
          if (state.errors > 3) throw state.lastError;
          progress = true;
          state.notBefore = 0;
          continue;
        }
        const name = state.reg.channel.name;
        const entry = summary.byChannel[name] ?? { processed: 0, retried: 0, dead: 0 };
        summary.byChannel[name] = entry;
        entry.processed += outcome.processed.length;
        for (const f of outcome.failed) {
          if (f.dead) entry.dead++;
          else entry.retried++;
        }
        if (outcome.claimed > 0) progress = true;
      }
    }
  }

  private markDirty(state: ChannelState): void {
    state.dirty = true;
    state.gen++;
    this.pump();
  }

  private track<T>(promise: Promise<T>): void {
    this.background.add(promise);
    promise.finally(() => this.background.delete(promise)).catch(() => {});
  }

  private pump(): void {
    if (!this.active) return;
    const now = Date.now();
    let launched = true;
    while (launched && this.running < this.settings.concurrency) {
      launched = false;
      for (const state of this.states.values()) {
        if (this.running >= this.settings.concurrency) break;
        if (!state.dirty) continue;
        if (now < state.notBefore) {
          // Backing off after a claim error: make sure a timer wakes the channel when it may claim
          // again. A timer set for an earlier error may have fired already (issue 14, item 3).
          this.scheduleAt(state, state.notBefore);
          continue;
        }
        const room = this.room(state);
        if (room <= 0) continue;
        const reg = state.reg;
        if (reg.leaseMs !== undefined) {
          // Lease claims commit at once: the next may start as soon as this one's rows are leased.
          if (state.selecting > 0) continue;
        } else {
          if (reg.batch && reg.batch.maxWaitMs > 0 && state.inflight === 0 && !state.full) {
            state.batchDueAt ??= now + reg.batch.maxWaitMs;
            if (now < state.batchDueAt) {
              this.scheduleAt(state, state.batchDueAt);
              continue;
            }
          }
          // Claims overlap while batches come back full, and then a new one waits until the previous
          // one's rows are locked, so it can start after them instead of walking past them. They
          // also overlap when a hint arrived after the running claims were launched: their
          // snapshots may predate its row, and without a claim now it would wait for them to
          // commit (W2's tail, docs/benchmarks.md).
          const overlap =
            state.careful === 0 && ((state.full && state.selecting === 0) || this.hintedSince(state));
          if (state.inflight > 0 && !overlap) continue;
        }
        this.launch(state, room);
        launched = true;
      }
    }
  }

  /**
   * A hint (NOTIFY, due retry, probe) came after the latest claim of the channel was launched. Not for
   * ordered channels (their claims overlap only while batches are full) nor batch handlers (they
   * gather events on purpose).
   */
  private hintedSince(state: ChannelState): boolean {
    return state.gen !== state.launchedGen && !state.reg.batch && orderModeOf(state.reg.channel) === null;
  }

  /** True when no claim and no lease handler runs. */
  private idleNow(): boolean {
    return this.running === 0 && this.leaseTotal === 0;
  }

  /** The batch size of a channel's next claim, before its `concurrency` and `rate` room. */
  private limitFor(state: ChannelState): number {
    const batch = state.reg.batch;
    if (batch) return state.careful > 0 ? 1 : batch.size;
    return batchLimit(state, this.settings.batchSize);
  }

  /**
   * How many notifications the channel's next claim may take now (0: do not claim), after its own
   * `concurrency` and `rate`. A transactional claim runs its handlers one after another, so its
   * `concurrency` counts claims in flight and does not shrink batches; a lease claim's handlers all
   * run at once, so it takes at most the free handler slots. When the rate is what stops the
   * channel, a timer wakes it when the window has room again.
   */
  private room(state: ChannelState): number {
    const reg = state.reg;
    let room = Number.POSITIVE_INFINITY;
    if (reg.leaseMs !== undefined) {
      room = (reg.concurrency ?? this.settings.concurrency) - state.leaseRunning;
    } else if (reg.concurrency !== undefined && state.inflight >= reg.concurrency) {
      room = 0;
    }
    if (room > 0 && reg.rate) {
      const available = reg.rate.available();
      if (available <= 0) this.scheduleAt(state, Date.now() + Math.ceil(reg.rate.waitMs()));
      room = Math.min(room, available);
    }
    return room;
  }

  private launch(state: ChannelState, room: number): void {
    this.running++;
    state.inflight++;
    state.selecting++;
    const gen = state.gen;
    state.launchedGen = gen;
    const now = Date.now();
    const lease = state.reg.leaseMs !== undefined;
    const limit = Math.max(1, Math.min(this.limitFor(state), room));
    state.batchDueAt = undefined;
    const lead = lease || isLead(state, now);
    if (lead) {
      state.leadAt = now;
      state.needLead = false;
    }
    const window: ClaimWindow = { limit, after: lead ? null : state.frontier };
    const leased: Claimed[] = [];
    let selected = false;
    const onClaimed = (count: number, last: ClaimCursor | null) => {
      selected = true;
      state.selecting--;
      if (last && (state.frontier === null || isAfter(last, state.frontier))) state.frontier = last;
      state.full = count >= limit;
      if (!lead && !state.full) state.needLead = true;
      if (state.full) this.pump();
    };
    this.track(
      this.claimOnce(state, window, onClaimed, leased).then((outcome) => {
        if (!selected) state.selecting--;
        this.running--;
        state.inflight--;
        if (state.inflight === 0) state.frontier = null;
        for (const item of leased) this.startLease(state, item);
        if (lease) state.full = outcome !== null && outcome.claimed >= limit;
        if (outcome && !lease) learn(state, outcome);
        else state.full = false;
        // A claim that found more than one notification claims again at once: work keeps coming, and
        // producers send no NOTIFY while the flag is clear. Otherwise a claim from the head that found
        // at most one, with no hint meanwhile (its row may be newer than the claim's snapshot), hands
        // over to the idle protocol, whose probe (one round trip) catches what came in since.
        // A hint that came while this claim ran and started a claim of its own is that claim's to
        // answer: when it ends, it claims again or goes idle (whose probe starts from the head).
        if (outcome && outcome.claimed >= Math.min(2, limit)) state.dirty = true;
        else if (
          outcome &&
          lead &&
          (state.gen === gen || (state.inflight > 0 && state.launchedGen === state.gen))
        )
          state.dirty = false;
        if (!state.dirty && state.inflight === 0) this.goIdle(state);
        this.pump();
        if (this.idleNow()) this.settled?.();
      }),
    );
  }

  /** Runs a leased notification's handler in the background (lease.ts); it holds no transaction. */
  private startLease(state: ChannelState, item: Claimed): void {
    state.leaseRunning++;
    this.leaseTotal++;
    this.track(
      this.runLease(state, item).finally(() => {
        state.leaseRunning--;
        this.leaseTotal--;
        this.pump();
        if (this.idleNow()) this.settled?.();
      }),
    );
  }

  /** One lease handler, its completion, and its report; `null` when the listener stopped first. */
  private async runLease(state: ChannelState, item: Claimed): Promise<ClaimOutcome | null> {
    const name = state.reg.channel.name;
    const onError = (error: unknown, during: string) => this.events.emit('error', { error, during });
    try {
      const outcome = await runLeased(state.reg, this.ctx, item, onError);
      if (outcome) this.report(state, outcome);
      return outcome;
    } catch (error) {
      // Completion failed (database unreachable): the lease runs out and the notification is retried.
      onError(error, `completing a lease handler of notification ${item.meta.id} on "${name}"`);
      return null;
    }
  }

  /** Runs one claim; after a failed transaction, claims one at a time and isolates the culprit. */
  private async claimOnce(
    state: ChannelState,
    window: ClaimWindow,
    onClaimed?: (count: number, last: ClaimCursor | null) => void,
    leased?: Claimed[],
  ): Promise<ClaimOutcome | null> {
    const claimedIds: string[] = [];
    const careful = state.careful > 0;
    // Spans for this claim's handlers if a tracer records now (an SDK may register at any time).
    state.reg.telemetry?.refresh();
    try {
      let outcome: ClaimOutcome;
      if (state.reg.leaseMs !== undefined) {
        const claim = await claimLeased(state.reg, this.ctx, window.limit, { safe: careful, claimedIds });
        outcome = claim.outcome;
        // No onClaimed: the next lease claim waits until these handlers count as running.
        leased?.push(...claim.leased);
      } else {
        const metered = state.reg.telemetry?.metered === true;
        const started = metered ? performance.now() : 0;
        outcome = await claimBatch(state.reg, this.ctx, window, {
          safe: careful,
          claimedIds,
          ...(onClaimed ? { onClaimed } : {}),
        });
        if (metered) state.reg.telemetry!.claimed(state.reg.channel.name, performance.now() - started);
      }
      if (careful) state.careful--;
      state.errors = 0;
      state.notBefore = 0;
      this.report(state, outcome);
      return outcome;
    } catch (error) {
      if (this.ctx.hardStop.aborted) return null;
      this.events.emit('error', { error, during: `a claim transaction on "${state.reg.channel.name}"` });
      state.errors++;
      state.lastError = error;
      state.notBefore = Date.now() + errorBackoffMs(state.errors);
      this.scheduleAt(state, state.notBefore);
      if (!careful) {
        state.careful = this.settings.batchSize;
      } else if (claimedIds.length === 1 && !isConnectionLost(error)) {
        // This one notification breaks its whole transaction (e.g. a deferred constraint at COMMIT).
        // A lost connection is not its fault, and costs it no attempt.
        return this.recordBroken(state, claimedIds[0]!, error);
      }
      return null;
    }
  }

  private async recordBroken(state: ChannelState, id: string, error: unknown): Promise<ClaimOutcome | null> {
    const [row] = await this.sql
      .unsafe(`SELECT "attempts" FROM ${this.ctx.table} WHERE "id" = $1`, [id])
      .catch(() => []);
    if (!row) return null;
    const attempt = (row.attempts as number) + 1;
    const dead = attempt >= state.reg.maxAttempts;
    const retry = dead ? { delayMs: 0 } : retryDelay(state.reg.backoff, attempt, state.reg.channel.name);
    const delayMs = retry.delayMs;
    try {
      await recordFailures(
        this.sql,
        this.ctx.table,
        [{ id, error: withProblem(error, retry.problem), delayMs, dead }],
        orderModeOf(state.reg.channel),
      );
    } catch (recordError) {
      this.events.emit('error', { error: recordError, during: 'recording a failed attempt' });
      return null;
    }
    state.careful--;
    state.errors = 0;
    state.notBefore = 0;
    const outcome: ClaimOutcome = {
      claimed: 1,
      released: 0,
      subtransactions: 0,
      processed: [],
      failed: [{ id, attempt, error, dead, retryAt: dead ? null : new Date(Date.now() + delayMs) }],
    };
    this.report(state, outcome);
    return outcome;
  }

  private report(state: ChannelState, outcome: ClaimOutcome): void {
    const channel = state.reg.channel.name;
    if (outcome.claimed > 0) this.lastClaimAt = Date.now();
    this.handled += outcome.processed.length;
    state.reg.telemetry?.report(channel, outcome);
    for (const p of outcome.processed) this.events.emit('processed', { channel, ...p });
    let earliest = Number.POSITIVE_INFINITY;
    for (const f of outcome.failed) {
      const { id, attempt, error, retryAt } = f;
      this.events.emit('failed', { channel, id, attempt, error, retryAt });
      if (f.dead) this.events.emit('dead', { channel, id, attempts: attempt, error });
      if (retryAt) earliest = Math.min(earliest, retryAt.getTime());
    }
    if (Number.isFinite(earliest)) this.scheduleAt(state, earliest);
  }

  /** Wakes a channel at `at` (retries, backoff after errors), keeping only the earliest timer. */
  private scheduleAt(state: ChannelState, at: number): void {
    if (!this.active) return;
    if (state.timer && state.timerAt <= at) return;
    clearTimeout(state.timer);
    state.timerAt = at;
    const wake = () => {
      state.timer = undefined;
      // A wake-up beyond setTimeout's range was armed for MAX_TIMER_MS: arm again until it is due.
      if (at - Date.now() > 0) {
        this.scheduleAt(state, at);
        return;
      }
      this.markDirty(state);
    };
    // setTimeout fires at once for delays over 2^31 - 1 ms (~24.8 days): a retry that far ahead
    // would turn the idle listener into a busy loop (issue 14, item 16).
    state.timer = setTimeout(wake, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now()) + 5));
    state.timer.unref?.();
  }

  /** Out of work: the idle protocol (idle.ts) decides whether to claim again, wake later, or sleep. */
  private goIdle(state: ChannelState): void {
    if (!this.active) return;
    const gen = state.gen;
    const busy = () => state.gen !== gen || !this.active;
    const name = state.reg.channel.name;
    this.track(
      this.idle.goIdle(name, busy).then(
        (outcome) => {
          if (outcome?.ready) this.markDirty(state);
          else if (outcome && outcome.nextRunAt !== null) this.scheduleAt(state, outcome.nextRunAt);
        },
        (error) => {
          this.events.emit('error', { error, during: `going idle on "${name}"` });
          this.scheduleAt(state, Date.now() + 1000);
        },
      ),
    );
  }

  /** The safety sweep: one indexed statement for all idle channels. */
  private async sweep(): Promise<void> {
    const idle = [...this.states.values()].filter((s) => !s.dirty && s.inflight === 0);
    if (idle.length === 0 || !this.active) return;
    try {
      const probes = await this.idle.probe(idle.map((s) => s.reg.channel.name));
      for (const probe of probes) {
        const state = this.states.get(probe.channel)!;
        if (probe.ready) this.markDirty(state);
        else if (probe.nextRunAt !== null) this.scheduleAt(state, probe.nextRunAt);
      }
    } catch (error) {
      this.events.emit('error', { error, during: 'the safety sweep' });
    }
  }
}
