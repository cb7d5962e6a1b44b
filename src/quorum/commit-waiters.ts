/**
 * Commit waiters (invariant 5): clients whose commit LSN is not yet durable. The writer adds one per
 * commit without waiting ([P17] §4.2.2 asynchronous commit); when VDL advances it asks for the
 * waiters it may now acknowledge, and gets them back in LSN order — the caller resolves them, so
 * this stays pure data and a simulator can check the order.
 *
 * A min-heap keyed by (commit LSN, arrival): commits usually arrive in LSN order, but with several
 * SQLite workers the hand-off to this structure may interleave; equal LSNs keep arrival order.
 * Bounded by the caller: outstanding commits cannot exceed what LAL lets it allocate (invariant 6).
 */
import { assert, isSafeUint } from "../core/assert.js";
import { NO_LSN, type Lsn } from "../core/types.js";

interface Entry<T> {
  readonly lsn: Lsn;
  readonly seq: number;
  readonly waiter: T;
}

export class CommitWaiters<T> {
  private readonly heap: Entry<T>[] = [];
  private seq = 0;
  private vdlValue: Lsn;
  /** The last commit LSN handed out, to assert LSN order across calls. */
  private lastReleased: Lsn = NO_LSN;

  /** `vdl`: the durable point already known (commits at or below it need no waiting). */
  constructor(vdl: Lsn = NO_LSN) {
    assert(isSafeUint(vdl), "commit waiters start at an LSN");
    this.vdlValue = vdl;
  }

  get size(): number {
    return this.heap.length;
  }

  /** The VDL this structure has been told. */
  get vdl(): Lsn {
    return this.vdlValue;
  }

  /**
   * Registers a waiter for `commitLsn`. Returns false if the commit is already durable (≤ the VDL
   * told so far): the caller acknowledges it at once — every waiter with a lower LSN has already
   * been handed out, so LSN order holds.
   */
  add(commitLsn: Lsn, waiter: T): boolean {
    assert(isSafeUint(commitLsn) && commitLsn > NO_LSN, `commit LSN ${commitLsn} is a positive LSN`);
    if (commitLsn <= this.vdlValue) return false;
    this.heap.push({ lsn: commitLsn, seq: this.seq++, waiter });
    this.siftUp(this.heap.length - 1);
    return true;
  }

  /** VDL is now `vdl`: returns the waiters with commit LSN ≤ vdl, in LSN order, and forgets them. */
  onVdlAdvanced(vdl: Lsn): T[] {
    assert(isSafeUint(vdl) && vdl >= this.vdlValue, 4, `VDL went back from ${this.vdlValue} to ${vdl}`);
    this.vdlValue = vdl;
    const released: T[] = [];
    while (this.heap.length > 0 && this.heap[0]!.lsn <= vdl) {
      const e = this.pop();
      assert(e.lsn >= this.lastReleased, 5, `commit ${e.lsn} acknowledged after ${this.lastReleased}`);
      assert(e.lsn <= vdl, 5, `commit ${e.lsn} acknowledged above VDL ${vdl}`);
      this.lastReleased = e.lsn;
      released.push(e.waiter);
    }
    return released;
  }

  /**
   * Removes and returns every waiter, in LSN order: the writer was fenced or is shutting down, and
   * the caller fails them (COMMIT_OUTCOME_UNKNOWN — they may yet be durable).
   */
  drain(): T[] {
    const all: T[] = [];
    while (this.heap.length > 0) all.push(this.pop().waiter);
    return all;
  }

  private less(a: Entry<T>, b: Entry<T>): boolean {
    return a.lsn < b.lsn || (a.lsn === b.lsn && a.seq < b.seq);
  }

  private pop(): Entry<T> {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const child = r < n && this.less(heap[r]!, heap[l]!) ? r : l;
      if (!this.less(heap[child]!, heap[i]!)) return;
      [heap[i], heap[child]] = [heap[child]!, heap[i]!];
      i = child;
    }
  }
}
