/**
 * A small process supervisor: what `borealis up` uses to run storage nodes as child processes.
 *
 * - Each child runs in its own process group (`detached`), so a Ctrl-C in the terminal reaches only
 *   `borealis up`, which then stops the children in order; and with an IPC channel, so a child notices
 *   when `up` itself dies without cleaning up (see lifecycle.ts) and exits instead of lingering.
 * - A child that exits unexpectedly is reported and restarted after a capped exponential backoff
 *   (0.5 s, 1 s, 2 s … 30 s); a child that had run for 30 s before it exited — or had printed its
 *   `readyLine` (it was serving) — starts again from the shortest delay. A crash loop therefore costs
 *   little, and a one-off crash is repaired quickly, however soon after the last one it comes.
 * - `stop()` sends SIGTERM to each child by PID, waits up to `stopTimeoutMs`, then sends SIGKILL to
 *   whatever is left. It never signals a process it did not start.
 * - Each child's stdout and stderr are appended to its log file; the last lines are also kept in
 *   memory (bounded) so that a failure can be reported with its cause.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import * as path from "node:path";
import type { Clock, Timer } from "../env/env.js";
import { assert } from "../core/assert.js";

export interface ChildSpec {
  /** Short identity, e.g. "n1". */
  readonly key: string;
  /** For messages, e.g. "storage node n1". */
  readonly label: string;
  readonly command: string;
  readonly args: readonly string[];
  /** stdout and stderr are appended here. */
  readonly logFile: string;
  /**
   * A line of output meaning "started and serving": a run that printed it was no crash loop, so its
   * exit restarts the child after the shortest delay, however short the run.
   */
  readonly readyLine?: RegExp;
}

export type SupervisorEvent =
  | { readonly type: "started"; readonly key: string; readonly pid: number; readonly start: number }
  | {
    readonly type: "exited"; readonly key: string; readonly pid: number | null; readonly code: number | null;
    readonly signal: string | null; readonly error?: string;
    /** When it will be started again; null while stopping. */
    readonly restartInMs: number | null;
  };

export interface ChildStatus {
  readonly key: string;
  readonly label: string;
  readonly pid: number | null;
  readonly running: boolean;
  /** Times it was started (1 + restarts). */
  readonly starts: number;
  readonly exits: number;
  readonly lastExit: { readonly code: number | null; readonly signal: string | null; readonly error?: string } | null;
  /** Its last lines of output, oldest first. */
  readonly tail: readonly string[];
  readonly logFile: string;
}

export interface SupervisorOptions {
  readonly clock: Clock;
  /** SIGTERM, then SIGKILL after this long. Default 5000. */
  readonly stopTimeoutMs?: number;
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number; readonly resetAfterMs?: number };
  readonly onEvent?: (event: SupervisorEvent) => void;
}

const TAIL_LINES = 20;
const TAIL_LINE_CHARS = 500;
/** After SIGKILL, how long to wait for the exit to be reported before giving up on a child. */
const KILL_WAIT_MS = 2000;
/** How long after 'exit' the 'close' event (all output read) may take before the exit is handled anyway. */
const CLOSE_AFTER_EXIT_MS = 1000;

class Supervised {
  child: ChildProcess | null = null;
  exited: Promise<void> = Promise.resolve();
  starts = 0;
  exits = 0;
  consecutiveFailures = 0;
  startedAtMs = 0;
  /** This run printed the spec's `readyLine`. */
  readyThisRun = false;
  restartTimer: Timer | null = null;
  lastExit: ChildStatus["lastExit"] = null;
  readonly tail: string[] = [];
  partial = "";
  readonly log: WriteStream;

  constructor(readonly spec: ChildSpec) {
    mkdirSync(path.dirname(spec.logFile), { recursive: true });
    this.log = createWriteStream(spec.logFile, { flags: "a" });
    // A log file that cannot be written must not take the supervisor down; the tail still works.
    this.log.on("error", () => {});
  }

  output(chunk: Buffer): void {
    this.log.write(chunk);
    const text = this.partial + chunk.toString("utf8");
    const lines = text.split("\n");
    this.partial = lines.pop()!.slice(-TAIL_LINE_CHARS);
    for (const line of lines) {
      if (line.trim().length === 0) continue;
      if (this.spec.readyLine?.test(line) === true) this.readyThisRun = true;
      this.tail.push(line.slice(0, TAIL_LINE_CHARS));
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
  }
}

export class Supervisor {
  private readonly children = new Map<string, Supervised>();
  private readonly stopTimeoutMs: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly resetAfterMs: number;
  private stopping = false;

  constructor(specs: readonly ChildSpec[], private readonly options: SupervisorOptions) {
    this.stopTimeoutMs = options.stopTimeoutMs ?? 5000;
    this.initialMs = options.backoff?.initialMs ?? 500;
    this.maxMs = options.backoff?.maxMs ?? 30_000;
    this.resetAfterMs = options.backoff?.resetAfterMs ?? 30_000;
    assert(this.initialMs > 0 && this.maxMs >= this.initialMs, "backoff: 0 < initial ≤ max");
    for (const spec of specs) {
      assert(!this.children.has(spec.key), `supervisor: duplicate child ${spec.key}`);
      this.children.set(spec.key, new Supervised(spec));
    }
  }

  /** Starts every child. */
  start(): void {
    assert(!this.stopping, "supervisor: start after stop");
    for (const s of this.children.values()) if (s.child === null) this.spawn(s);
  }

  status(key: string): ChildStatus {
    const s = this.children.get(key);
    assert(s !== undefined, `supervisor: no child ${key}`);
    return {
      key, label: s.spec.label, pid: s.child?.pid ?? null, running: s.child !== null, starts: s.starts, exits: s.exits,
      lastExit: s.lastExit, tail: [...s.tail, ...(s.partial.length > 0 ? [s.partial] : [])], logFile: s.spec.logFile,
    };
  }

  keys(): string[] {
    return [...this.children.keys()];
  }

  /** Stops every child (SIGTERM, then SIGKILL after the timeout) and resolves when all have exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    const all = [...this.children.values()];
    for (const s of all) {
      s.restartTimer?.cancel();
      s.restartTimer = null;
      s.child?.kill("SIGTERM");
    }
    const allExited = Promise.all(all.map((s) => s.exited));
    if (!(await this.within(allExited, this.stopTimeoutMs))) {
      for (const s of all) s.child?.kill("SIGKILL");
      await this.within(allExited, KILL_WAIT_MS);
    }
    await Promise.all(all.map((s) => new Promise<void>((resolve) => s.log.end(() => resolve()))));
  }

  // ------------------------------------------------------------------------------------------ private

  private within(p: Promise<unknown>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = this.options.clock.setTimer(ms, () => resolve(false));
      void p.then(() => { timer.cancel(); resolve(true); });
    });
  }

  private spawn(s: Supervised): void {
    assert(s.child === null && !this.stopping, "supervisor: spawn only a stopped child, only while running");
    s.starts++;
    // The tail describes the current (or last) run only, so a failure report shows that run's output.
    s.tail.length = 0;
    s.partial = "";
    s.startedAtMs = this.options.clock.nowMs();
    s.readyThisRun = false;
    s.log.write(`--- ${new Date().toISOString()} starting ${s.spec.label} (start #${s.starts}) ---\n`);
    const child = spawn(s.spec.command, [...s.spec.args], { stdio: ["ignore", "pipe", "pipe", "ipc"], detached: true });
    s.child = child;
    let resolveExited!: () => void;
    s.exited = new Promise((resolve) => { resolveExited = resolve; });
    child.stdout?.on("data", (b: Buffer) => s.output(b));
    child.stderr?.on("data", (b: Buffer) => s.output(b));
    // The IPC channel only tells the child when we are gone; we never send on it.
    child.on("message", () => {});

    let done = false;
    const finish = (code: number | null, signal: string | null, error?: string): void => {
      if (done) return;
      done = true;
      s.child = null;
      s.exits++;
      s.lastExit = error === undefined ? { code, signal } : { code, signal, error };
      s.log.write(`--- ${new Date().toISOString()} ${s.spec.label} exited (code ${code}, signal ${signal}${error ? `, ${error}` : ""}) ---\n`);
      resolveExited();
      let restartInMs: number | null = null;
      if (!this.stopping) {
        const ranMs = this.options.clock.nowMs() - s.startedAtMs;
        s.consecutiveFailures = ranMs >= this.resetAfterMs || s.readyThisRun ? 1 : s.consecutiveFailures + 1;
        restartInMs = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(20, s.consecutiveFailures - 1));
        s.restartTimer = this.options.clock.setTimer(restartInMs, () => {
          s.restartTimer = null;
          if (!this.stopping) this.spawn(s);
        });
      }
      this.options.onEvent?.({ type: "exited", key: s.spec.key, pid: child.pid ?? null, code, signal, ...(error ? { error } : {}), restartInMs });
    };
    // 'close' (not 'exit') so that the child's last output has been read before we report it; but a
    // grandchild holding the pipes open must not hide the exit for ever, hence the fallback.
    child.on("close", (code, signal) => finish(code, signal));
    child.on("exit", (code, signal) => {
      const fallback = this.options.clock.setTimer(CLOSE_AFTER_EXIT_MS, () => finish(code, signal));
      child.once("close", () => fallback.cancel());
    });
    child.on("error", (e) => {
      // spawn itself failed (no such executable …): there will be no 'close' with a pid.
      if (child.pid === undefined) finish(null, null, e.message);
    });
    if (child.pid !== undefined) this.options.onEvent?.({ type: "started", key: s.spec.key, pid: child.pid, start: s.starts });
  }
}
