import { PgPubSubError } from '../errors.ts';
import type { EventMeta } from '../events.ts';
import type { Claimed } from './claim-decode.ts';
import type { Registration } from './claim-types.ts';
import type { HandlerScope } from './handler-tx.ts';

/** Thrown in a claim when the listener hard-stopped: the claim transaction rolls back. */
export class HardStop extends Error {}

const CONTROLLER = Symbol('controller');

/** The event a handler receives; its `signal` is created on first use (most handlers never read it). */
export class HandlerEvent {
  [key: string]: unknown;
  #controller: AbortController | undefined;

  constructor(meta: Omit<EventMeta, 'signal'>, body: Record<string, unknown>) {
    Object.assign(this, meta, body);
  }

  get signal(): AbortSignal {
    return this[CONTROLLER]().signal;
  }

  [CONTROLLER](): AbortController {
    this.#controller ??= new AbortController();
    return this.#controller;
  }
}

/**
 * Lets the listener's hard stop interrupt whichever handler of a claim is running: one abort
 * listener and one promise per claim rather than per notification.
 */
export class StopGuard {
  /** Interrupts the running handler: aborts its signal and cancels its queries. */
  private current: ((reason: Error) => void) | undefined;
  private readonly stopped: Promise<never>;
  private readonly onStop: () => void;
  /** When the claim transaction began (`performance.now()`), for the span's claim wait; unset for leases. */
  claimStartedAt: number | undefined;

  constructor(private readonly hardStop: AbortSignal) {
    let reject!: (error: unknown) => void;
    this.stopped = new Promise<never>((_, r) => {
      reject = r;
    });
    this.stopped.catch(() => {});
    this.onStop = () => {
      this.current?.(new PgPubSubError('ABORTED', 'The listener stopped before this handler finished.'));
      reject(new HardStop());
    };
    hardStop.addEventListener('abort', this.onStop, { once: true });
  }

  /** Runs one handler; it rejects when the handler times out or the listener gives up on it. */
  run(reg: Registration, claimed: Claimed, scope: HandlerScope): Promise<void> {
    const event = new HandlerEvent(claimed.meta, claimed.body!);
    return this.invoke(reg, [event], scope, () => reg.handler(event, scope.tx)).then(() => {});
  }

  /**
   * Runs `call` (a handler invocation) as the running handler of `events`: a hard stop or the
   * timeout aborts their signals and cancels the scope's queries (if any), and rejects. Resolves
   * with what the handler returned.
   */
  invoke(
    reg: Registration,
    events: HandlerEvent[],
    scope: { abort(message: string): void } | undefined,
    call: () => unknown,
  ): Promise<unknown> {
    const telemetry = reg.telemetry;
    if (telemetry === undefined || !telemetry.active) return this.invokeBare(reg, events, scope, call);
    return telemetry.run(reg.channel.name, reg.maxAttempts, events, this.claimStartedAt, () =>
      this.invokeBare(reg, events, scope, call),
    );
  }

  private async invokeBare(
    reg: Registration,
    events: HandlerEvent[],
    scope: { abort(message: string): void } | undefined,
    call: () => unknown,
  ): Promise<unknown> {
    if (this.hardStop.aborted) throw new HardStop();
    let timer: NodeJS.Timeout | undefined;
    let timedOut: Promise<never> | undefined;
    this.current = (reason) => {
      for (const event of events) event[CONTROLLER]().abort(reason);
      scope?.abort(reason.message);
    };
    const ms = reg.timeoutMs;
    if (ms !== undefined) {
      timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new PgPubSubError(
            'HANDLER_TIMEOUT',
            `Handler of "${reg.channel.name}" ran past its ${ms} ms timeout.`,
          );
          this.current?.(error);
          reject(error);
        }, ms);
      });
    }
    try {
      // The claim does not wait for a handler that ignores its signal: it races the stop (and timeout).
      let result = call() as PromiseLike<unknown> | unknown;
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
        const races = [result as PromiseLike<unknown>, this.stopped];
        if (timedOut) races.push(timedOut);
        result = await Promise.race(races);
      }
      // A handler that returns after the listener gave up on it must not commit.
      if (this.hardStop.aborted) throw new HardStop();
      return result;
    } catch (error) {
      if (this.hardStop.aborted) throw new HardStop();
      throw error;
    } finally {
      this.current = undefined;
      clearTimeout(timer);
    }
  }

  /** Aborts the running handler's signal (e.g. its lease was lost), without failing it. */
  interrupt(reason: Error): void {
    this.current?.(reason);
  }

  dispose(): void {
    this.hardStop.removeEventListener('abort', this.onStop);
  }
}
