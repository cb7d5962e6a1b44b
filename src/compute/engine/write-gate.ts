/**
 * The engine's write lock, on the main thread: who may send writes to the writer worker.
 *
 * Two modes. `shared`: autocommit write statements — many may be in flight at once, because the
 * writer worker runs them one after another on one connection, each a whole transaction; pipelining
 * them keeps the writer busy while replies travel. `exclusive`: one explicit write transaction (or a
 * script), from its first write to its end; it waits for in-flight autocommit writes to drain.
 *
 * Waiters queue in FIFO order (a shared request behind a waiting exclusive one waits too, so an
 * explicit transaction is not starved), the queue is bounded, and each wait has a timeout: a second
 * write transaction waits instead of failing at once, and gets SQLITE_BUSY if the first one does not
 * finish in time. The SQLite connections themselves never wait (busy_timeout=0; the VFS answers BUSY).
 */
import { assert } from "../../core/assert.js";
import { SqliteError } from "../sql-engine.js";
import { SQLITE_BUSY } from "./sqlite-abi.js";

export type GateMode = "shared" | "exclusive";

interface Waiter {
  readonly mode: GateMode;
  readonly owner: object;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
  timer: ReturnType<typeof setTimeout> | null;
}

export class WriteGate {
  private sharedCount = 0;
  private exclusiveOwner: object | null = null;
  private readonly queue: Waiter[] = [];

  constructor(private readonly maxWaiters: number) {
    assert(maxWaiters >= 1, "the write lock queue holds at least one waiter");
  }

  get holders(): { shared: number; exclusive: boolean; waiting: number } {
    return { shared: this.sharedCount, exclusive: this.exclusiveOwner !== null, waiting: this.queue.length };
  }

  /** Resolves when granted; rejects with SQLITE_BUSY after `timeoutMs` or when the queue is full. */
  acquire(mode: GateMode, owner: object, timeoutMs: number): Promise<void> {
    if (mode === "exclusive" && this.exclusiveOwner === owner) return Promise.resolve();
    if (this.queue.length === 0 && this.compatible(mode)) {
      this.grant(mode, owner);
      return Promise.resolve();
    }
    if (this.queue.length >= this.maxWaiters) {
      return Promise.reject(new SqliteError(`database is locked: ${this.queue.length} writers already waiting`, "SQLITE_BUSY", "SQLITE_BUSY", SQLITE_BUSY));
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { mode, owner, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        const i = this.queue.indexOf(w);
        if (i < 0) return;
        this.queue.splice(i, 1);
        reject(new SqliteError(`database is locked: waited ${timeoutMs} ms for the write lock`, "SQLITE_BUSY", "SQLITE_BUSY_TIMEOUT", SQLITE_BUSY | (3 << 8)));
        this.pump(); // a waiter behind this one may now be grantable
      }, timeoutMs);
      this.queue.push(w);
    });
  }

  release(mode: GateMode, owner: object): void {
    if (mode === "shared") {
      assert(this.sharedCount > 0, "shared write lock released once per grant");
      this.sharedCount--;
    } else {
      assert(this.exclusiveOwner === owner, "exclusive write lock released by its owner");
      this.exclusiveOwner = null;
    }
    this.pump();
  }

  /** Fails every waiter (engine closing). */
  rejectAll(e: unknown): void {
    for (const w of this.queue.splice(0)) {
      if (w.timer !== null) clearTimeout(w.timer);
      w.reject(e);
    }
  }

  private compatible(mode: GateMode): boolean {
    return this.exclusiveOwner === null && (mode === "shared" || this.sharedCount === 0);
  }

  private grant(mode: GateMode, owner: object): void {
    if (mode === "shared") this.sharedCount++;
    else this.exclusiveOwner = owner;
  }

  private pump(): void {
    while (this.queue.length > 0 && this.compatible(this.queue[0]!.mode)) {
      const w = this.queue.shift()!;
      if (w.timer !== null) clearTimeout(w.timer);
      this.grant(w.mode, w.owner);
      w.resolve();
    }
  }
}
