/**
 * Virtual time and the simulator's event loop.
 *
 * Everything that would wait in a real process — timers, disk latency, network delivery — is an event
 * in one queue ordered by (virtual time, sequence number). `run` pops events one at a time and, after
 * each, lets every promise continuation settle (`setImmediate` runs only once the microtask queue is
 * empty) before taking the next. Code under simulation never touches real timers or real I/O, so the
 * order of everything is a function of the seed.
 */
import type { Clock, Timer } from "../env/env.js";
import { assert } from "../core/assert.js";

interface SimEvent {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
  cancelled: boolean;
}

/** Binary min-heap on (at, seq). */
class EventQueue {
  private heap: SimEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(e: SimEvent): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Scheduler {
  private queue = new EventQueue();
  private seq = 0;
  private nowMs = 0;
  /** Events run so far: part of the trace, and a bound on runaway runs. */
  eventsRun = 0;

  now(): number {
    return this.nowMs;
  }

  /** Schedules `run` after `delayMs` of virtual time; returns a handle that cancels it. */
  at(delayMs: number, run: () => void): Timer {
    assert(delayMs >= 0 && Number.isFinite(delayMs), `bad delay ${delayMs}`);
    const e: SimEvent = { at: this.nowMs + delayMs, seq: this.seq++, run, cancelled: false };
    this.queue.push(e);
    return { cancel: () => { e.cancelled = true; } };
  }

  /** A Clock view of this scheduler for one simulated process; `skewMs` offsets its wall clock. */
  clock(skewMs = 0): Clock {
    return {
      nowMs: () => this.nowMs,
      wallMs: () => 1_700_000_000_000 + this.nowMs + skewMs,
      setTimer: (ms, fn) => this.at(ms, fn),
      sleep: (ms) => new Promise((resolve) => { this.at(ms, resolve); }),
    };
  }

  /**
   * Runs events until `done()` is true, the queue is empty, virtual time passes `untilMs`, or
   * `maxEvents` have run. Returns why it stopped.
   */
  async run(options: { untilMs?: number; maxEvents?: number; done?: () => boolean } = {}): Promise<"done" | "idle" | "time" | "events"> {
    const untilMs = options.untilMs ?? Infinity;
    const maxEvents = options.maxEvents ?? Infinity;
    await settle();
    for (;;) {
      if (options.done?.()) return "done";
      const e = this.queue.pop();
      if (e === undefined) return "idle";
      if (e.cancelled) continue;
      if (e.at > untilMs) {
        this.queue.push(e);
        this.nowMs = untilMs;
        return "time";
      }
      if (this.eventsRun >= maxEvents) {
        this.queue.push(e);
        return "events";
      }
      this.nowMs = e.at;
      this.eventsRun++;
      e.run();
      await settle();
    }
  }

  /** Runs until `promise` settles (or the limits hit, which rejects). */
  async until<T>(promise: Promise<T>, options: { untilMs?: number; maxEvents?: number } = {}): Promise<T> {
    let state: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    promise.then((value) => { state = { ok: true, value }; }, (error: unknown) => { state = { ok: false, error }; });
    const why = await this.run({ ...options, done: () => state !== undefined });
    if (state === undefined) throw new Error(`simulation stopped (${why}) at ${this.nowMs} ms before the awaited operation finished`);
    if (!state.ok) throw state.error;
    return state.value;
  }
}
