/**
 * What the bench started, so that it is stopped and deleted whatever happens: a normal end, an
 * exception, Ctrl-C or SIGTERM. Every server, load generator and temporary directory is registered
 * here when it is created, by PID or path; cleanup ends exactly those processes (never by name) and
 * removes exactly those directories, newest first.
 *
 * Two paths: `runAll()` (async: a graceful `pg_ctl stop`, waiting for a process to exit) on the normal
 * and signal paths, and a synchronous last resort on `process.on("exit")` that SIGKILLs whatever is
 * still registered and deletes the directories, for the paths where async work can no longer run.
 */
import { rmSync } from "node:fs";
import { processExists } from "./proc.js";

interface Entry {
  readonly id: number;
  readonly what: string;
  /** Graceful: may take a few seconds. */
  readonly async: () => Promise<void>;
  /** Last resort: must not block for long. */
  readonly sync: () => void;
}

export class Cleanup {
  private readonly entries = new Map<number, Entry>();
  private nextId = 1;
  private running: Promise<void> | null = null;
  private installed = false;

  /** Registers an undo action; returns a function that unregisters it (after the caller undid it). */
  add(what: string, async: () => Promise<void>, sync: () => void): () => void {
    const id = this.nextId++;
    this.entries.set(id, { id, what, async, sync });
    return () => {
      this.entries.delete(id);
    };
  }

  /** A temporary directory: deleted on cleanup. */
  addDir(path: string): () => void {
    const rm = (): void => rmSync(path, { recursive: true, force: true, maxRetries: 3 });
    return this.add(`delete ${path}`, async () => rm(), rm);
  }

  /**
   * A process we started: on cleanup it gets `signal`, then SIGKILL after `graceMs` if still there.
   * `group` kills its whole process group (a child started with `detached: true` leads one).
   */
  addProcess(what: string, pid: number, options: { signal?: NodeJS.Signals; graceMs?: number; group?: boolean } = {}): () => void {
    const target = options.group === true ? -pid : pid;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        process.kill(target, sig);
      } catch {
        // Already gone.
      }
    };
    return this.add(
      `stop ${what} (pid ${pid})`,
      async () => {
        if (!processExists(pid)) return;
        kill(options.signal ?? "SIGTERM");
        const deadline = Date.now() + (options.graceMs ?? 5_000);
        while (processExists(pid) && Date.now() < deadline) await sleep(50);
        if (processExists(pid)) kill("SIGKILL");
      },
      () => kill("SIGKILL"),
    );
  }

  /** Undoes everything registered, newest first. Safe to call more than once. */
  runAll(log: (line: string) => void = () => {}): Promise<void> {
    if (this.running !== null) return this.running;
    this.running = (async () => {
      const list = [...this.entries.values()].reverse();
      for (const e of list) {
        try {
          await e.async();
        } catch (err) {
          log(`cleanup: ${e.what} failed: ${(err as Error).message}; forcing`);
          try {
            e.sync();
          } catch {
            // Nothing more we can do.
          }
        }
        this.entries.delete(e.id);
      }
    })();
    return this.running;
  }

  private runAllSync(): void {
    for (const e of [...this.entries.values()].reverse()) {
      try {
        e.sync();
      } catch {
        // Best effort on the way out.
      }
      this.entries.delete(e.id);
    }
  }

  /**
   * Installs the signal and exit handlers once per process. On SIGINT/SIGTERM/SIGHUP: graceful cleanup,
   * then exit 130/143/129; a second signal forces the synchronous path at once.
   */
  installProcessHandlers(log: (line: string) => void): void {
    if (this.installed) return;
    this.installed = true;
    let signalled = false;
    const onSignal = (sig: NodeJS.Signals, code: number) => (): void => {
      if (signalled) {
        this.runAllSync();
        process.exit(code);
      }
      signalled = true;
      log(`\n${sig}: stopping what the bench started…`);
      void this.runAll(log).finally(() => process.exit(code));
    };
    process.on("SIGINT", onSignal("SIGINT", 130));
    process.on("SIGTERM", onSignal("SIGTERM", 143));
    process.on("SIGHUP", onSignal("SIGHUP", 129));
    process.on("exit", () => this.runAllSync());
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
