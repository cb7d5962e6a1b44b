/**
 * The words every thread of the engine shares through one SharedArrayBuffer: the VDL, a flag that
 * stops commits, and the table of read points in use.
 *
 * - VDL is written only by the main thread (from `VolumeIO.onVdl`), monotonically (invariant 4), and
 *   read by every worker without a hop: a reader's snapshot starts there (invariant 7), the writer's
 *   LAL back-pressure waits on it (invariant 6), the buffer pool evicts only at or below it. It is a
 *   BigInt64 word read and written with Atomics (an LSN does not fit an Int32, and a plain Float64
 *   access to shared memory may tear). A separate Int32 sequence word is bumped on each change so a
 *   worker can `Atomics.wait` for the next VDL.
 * - The read point table has one slot per SQLite connection (any worker): the connection's snapshot
 *   while it holds a lock, -1 otherwise. Its minimum is the oldest read point in use (the engine's
 *   contribution to PGMRPL); the buffer pool reclaims versions older than it first.
 */
import { assert } from "../../core/assert.js";

const I32_SEQ = 0;
const I32_STOP = 1;
const I32_WORDS = 16;
const BIG_VDL = 0;
const BIG_READ_POINTS = 2;

export const NO_READ_POINT = -1;

export class SharedControl {
  readonly sab: SharedArrayBuffer;
  readonly readSlots: number;
  private readonly i32: Int32Array;
  private readonly big: BigInt64Array;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.i32 = new Int32Array(sab, 0, I32_WORDS);
    this.big = new BigInt64Array(sab, I32_WORDS * 4);
    this.readSlots = this.big.length - BIG_READ_POINTS;
    assert(this.readSlots >= 1, "shared control has read point slots");
  }

  static create(readSlots: number, initialVdl: number): SharedControl {
    assert(Number.isSafeInteger(readSlots) && readSlots >= 1 && readSlots <= 1 << 16, "read point slots in 1..65536");
    const sab = new SharedArrayBuffer(I32_WORDS * 4 + (BIG_READ_POINTS + readSlots) * 8);
    const c = new SharedControl(sab);
    c.big[BIG_VDL] = BigInt(initialVdl);
    for (let i = 0; i < readSlots; i++) c.big[BIG_READ_POINTS + i] = BigInt(NO_READ_POINT);
    return c;
  }

  static attach(sab: SharedArrayBuffer): SharedControl {
    return new SharedControl(sab);
  }

  // -------------------------------------------------------------------------------------- VDL

  vdl(): number {
    return Number(Atomics.load(this.big, BIG_VDL));
  }

  /** Main thread only. */
  publishVdl(vdl: number): void {
    const current = this.vdl();
    assert(Number.isSafeInteger(vdl) && vdl >= current, 4, `VDL is monotonic (${current} → ${vdl})`);
    if (vdl === current) return;
    Atomics.store(this.big, BIG_VDL, BigInt(vdl));
    Atomics.add(this.i32, I32_SEQ, 1);
    Atomics.notify(this.i32, I32_SEQ);
  }

  /**
   * Worker only (blocks): waits until VDL ≥ target or `timeoutMs` passes. Returns whether VDL
   * reached the target.
   */
  waitForVdl(target: number, timeoutMs: number, nowMs: () => number): boolean {
    const deadline = nowMs() + timeoutMs;
    for (;;) {
      const seq = Atomics.load(this.i32, I32_SEQ);
      if (this.vdl() >= target) return true;
      const left = deadline - nowMs();
      if (left <= 0) return false;
      Atomics.wait(this.i32, I32_SEQ, seq, left);
    }
  }

  // ------------------------------------------------------------------------------ commit stop

  /** Main thread: stop every further commit (the volume fenced us or durability failed). */
  stopCommits(): void {
    Atomics.store(this.i32, I32_STOP, 1);
  }

  commitsStopped(): boolean {
    return Atomics.load(this.i32, I32_STOP) !== 0;
  }

  // ------------------------------------------------------------------------------ read points

  setReadPoint(slot: number, lsn: number): void {
    assert(slot >= 0 && slot < this.readSlots, `read point slot ${slot} in range`);
    Atomics.store(this.big, BIG_READ_POINTS + slot, BigInt(lsn));
  }

  clearReadPoint(slot: number): void {
    Atomics.store(this.big, BIG_READ_POINTS + slot, BigInt(NO_READ_POINT));
  }

  readPoint(slot: number): number {
    return Number(Atomics.load(this.big, BIG_READ_POINTS + slot));
  }

  /** Fills `out` with the read points in use (unordered); returns it. */
  activeReadPoints(out: number[]): number[] {
    out.length = 0;
    for (let i = 0; i < this.readSlots; i++) {
      const v = Number(Atomics.load(this.big, BIG_READ_POINTS + i));
      if (v !== NO_READ_POINT) out.push(v);
    }
    return out;
  }

  /** The oldest read point in use, or +Infinity when no connection holds a snapshot. */
  minReadPoint(): number {
    let min = Infinity;
    for (let i = 0; i < this.readSlots; i++) {
      const v = Number(Atomics.load(this.big, BIG_READ_POINTS + i));
      if (v !== NO_READ_POINT && v < min) min = v;
    }
    return min;
  }
}
