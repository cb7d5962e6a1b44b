/**
 * The simulated world: one scheduler, one seed, and simulated processes, each with its own host name,
 * disk and incarnation. Killing a process drops every event it still had pending (its timers, disk
 * completions and network deliveries) and resets its connections, exactly as kill -9 would; its disk
 * can then crash (lose unsynced writes) before the process restarts with a fresh `Env`.
 */
import { createHash } from "node:crypto";
import type { Env, Logger } from "../env/env.js";
import { SeededRandom } from "./random.js";
import { Scheduler } from "./scheduler.js";
import { SimDisk, calmDisk, type DiskFaultConfig } from "./sim-disk.js";
import { SimNetwork } from "./sim-network.js";

export class SimProcess {
  alive = true;
  private incarnation = 0;

  constructor(readonly world: SimWorld, readonly host: string, readonly disk: SimDisk) {}

  /** Runs `fn` after `delayMs` unless this incarnation of the process has died by then. */
  schedule(delayMs: number, fn: () => void): { cancel(): void } {
    const incarnation = this.incarnation;
    return this.world.scheduler.at(delayMs, () => {
      if (this.alive && this.incarnation === incarnation) fn();
    });
  }

  /** kill -9: pending events vanish, connections reset. With `crashDisk`, unsynced writes are lost too. */
  kill(options: { crashDisk?: boolean } = {}): void {
    this.alive = false;
    this.incarnation++;
    this.world.network.resetHost(this.host);
    if (options.crashDisk ?? true) this.disk.crash();
    this.world.trace("kill", { host: this.host });
  }

  /** A fresh incarnation with its own Env; the disk keeps what survived. */
  start(): Env {
    this.alive = true;
    this.incarnation++;
    this.disk.attach(this);
    this.world.trace("start", { host: this.host });
    const scheduler = this.world.scheduler;
    const clock = {
      nowMs: () => scheduler.now(),
      wallMs: () => 1_700_000_000_000 + scheduler.now(),
      setTimer: (ms: number, fn: () => void) => this.schedule(ms, fn),
      sleep: (ms: number) => new Promise<void>((resolve) => { this.schedule(ms, resolve); }),
    };
    return {
      clock,
      random: this.world.random.fork(),
      disk: this.disk,
      network: this.world.network.forProcess(this),
      log: this.world.logger(this.host),
    };
  }
}

export class SimWorld {
  readonly scheduler = new Scheduler();
  readonly random: SeededRandom;
  readonly network: SimNetwork;
  readonly processes = new Map<string, SimProcess>();
  private readonly hash = createHash("sha256");
  readonly traceLines: string[] = [];
  /** Keep this many trace lines in memory for printing a failure; the hash covers all of them. */
  traceKeep = 2000;
  verbose = false;

  constructor(readonly seed: number) {
    this.random = new SeededRandom(seed);
    this.network = new SimNetwork(this.random.fork(), () => this.scheduler.now());
  }

  process(host: string, diskFaults: DiskFaultConfig = calmDisk): SimProcess {
    let p = this.processes.get(host);
    if (p === undefined) {
      p = new SimProcess(this, host, new SimDisk(this.random.fork(), { ...diskFaults }));
      this.processes.set(host, p);
    }
    return p;
  }

  /** Adds one line to the run's trace: the replay hash is over every line, in order. */
  trace(event: string, fields: Record<string, unknown> = {}): void {
    const line = `${this.scheduler.now().toFixed(3)} ${event} ${JSON.stringify(fields, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`;
    this.hash.update(line).update("\n");
    this.traceLines.push(line);
    if (this.traceLines.length > this.traceKeep) this.traceLines.splice(0, this.traceLines.length - this.traceKeep);
    if (this.verbose) process.stdout.write(line + "\n");
  }

  traceHash(): string {
    return this.hash.copy().digest("hex").slice(0, 16);
  }

  /** A Logger whose warnings and errors go into the trace (and whose debug lines are dropped). */
  logger(host: string): Logger {
    const make = (fields: Record<string, unknown>): Logger => ({
      debug: () => {},
      info: (event, f) => this.trace(`log.info.${event}`, { host, ...fields, ...f }),
      warn: (event, f) => this.trace(`log.warn.${event}`, { host, ...fields, ...f }),
      error: (event, f) => this.trace(`log.error.${event}`, { host, ...fields, ...f }),
      child: (more) => make({ ...fields, ...more }),
    });
    return make({});
  }
}
