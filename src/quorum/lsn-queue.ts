/**
 * A FIFO of fixed-width tuples of LSNs in a growable ring buffer: the durable-point tracker's
 * per-PG list of records not yet covered by PGCL, and its list of CPLs not yet covered by VCL.
 *
 * Why not an array with push/shift: shift is O(n) once V8 leaves its fast path, and the writer
 * pushes 100k+ records/s. The ring grows by doubling and shrinks by halving when a quarter full, so
 * memory follows the number of outstanding (not yet durable) records, not the peak ever seen.
 */
import { assert } from "../core/assert.js";

const MIN_CAPACITY = 16; // tuples

export class LsnQueue {
  private buf: Float64Array;
  private head = 0; // tuple index of the oldest entry
  private count = 0;

  /** `width`: numbers per entry (1 for an LSN, 2 for an LSN and its volume predecessor). */
  constructor(readonly width: number) {
    assert(Number.isInteger(width) && width >= 1 && width <= 4, "LsnQueue width is 1..4");
    this.buf = new Float64Array(MIN_CAPACITY * width);
  }

  get size(): number {
    return this.count;
  }

  private get capacity(): number {
    return this.buf.length / this.width;
  }

  /** Appends one entry; `b` is ignored when width is 1. */
  push(a: number, b = 0): void {
    if (this.count === this.capacity) this.resize(this.capacity * 2);
    const at = ((this.head + this.count) & (this.capacity - 1)) * this.width;
    this.buf[at] = a;
    if (this.width > 1) this.buf[at + 1] = b;
    this.count++;
  }

  /** Field `field` of the oldest entry. The queue must not be empty. */
  peek(field = 0): number {
    assert(this.count > 0 && field < this.width, "peek at a non-empty queue's field");
    return this.buf[this.head * this.width + field]!;
  }

  /** Field `field` of the newest entry. The queue must not be empty. */
  peekLast(field = 0): number {
    assert(this.count > 0 && field < this.width, "peekLast at a non-empty queue's field");
    const at = ((this.head + this.count - 1) & (this.capacity - 1)) * this.width;
    return this.buf[at + field]!;
  }

  /** Drops the oldest entry. */
  shift(): void {
    assert(this.count > 0, "shift from a non-empty queue");
    this.head = (this.head + 1) & (this.capacity - 1);
    this.count--;
    if (this.count === 0) this.head = 0;
    if (this.capacity > MIN_CAPACITY && this.count * 4 <= this.capacity) this.resize(this.capacity / 2);
  }

  private resize(capacity: number): void {
    assert(capacity >= this.count && capacity >= MIN_CAPACITY, "resize keeps every entry");
    assert((capacity & (capacity - 1)) === 0, "ring capacity is a power of two (index masking)");
    const next = new Float64Array(capacity * this.width);
    const cap = this.capacity;
    for (let i = 0; i < this.count; i++) {
      const from = ((this.head + i) & (cap - 1)) * this.width;
      for (let f = 0; f < this.width; f++) next[i * this.width + f] = this.buf[from + f]!;
    }
    this.buf = next;
    this.head = 0;
  }
}
