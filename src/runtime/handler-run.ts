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
  async run(reg: Registration, claimed: Claimed, scope: HandlerScope): Promise<void> {
    if (this.hardStop.aborted) throw new HardStop();
    const event = new HandlerEvent(claimed.meta, claimed.body!);
    let timer: NodeJS.Timeout | undefined;
    let timedOut: Promise<never> | undefined;
    this.current = (reason) => {
      event[CONTROLLER]().abort(reason);
      scope.abort(reason.message);
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
      const result = reg.handler(event, scope.tx) as PromiseLike<unknown> | undefined;
      if (typeof result?.then === 'function') {
        const races = [result, this.stopped];
        if (timedOut) races.push(timedOut);
        await Promise.race(races);
      }
      // A handler that returns after the listener gave up on it must not commit.
      if (this.hardStop.aborted) throw new HardStop();
    } catch (error) {
      if (this.hardStop.aborted) throw new HardStop();
      throw error;
    } finally {
      this.current = undefined;
      clearTimeout(timer);
    }
  }

  dispose(): void {
    this.hardStop.removeEventListener('abort', this.onStop);
  }
}
