/**
 * The buffer pool: a bounded, version-aware page cache in one SharedArrayBuffer, shared by every
 * worker of the engine.
 *
 * SQLite drops a connection's whole page cache whenever another connection commits (spike §2), so
 * the pages a reader needs after every commit must come from somewhere cheaper than storage. Here a
 * warm read costs a lock and a 4 KiB copy, no thread hop, and a reader sees the writer's new page
 * versions as soon as VDL covers them, without going to storage.
 *
 * Each slot holds one version of one page, valid for read points in [from, to]:
 * - `from` is the LSN of the page's last record in that version (the page LSN);
 * - `to` is +Infinity while the version is the page's newest; the writer closes it (to = lsn - 1)
 *   when it publishes the next version, before that version's records leave the worker, so no read
 *   point can ever see both or neither.
 * A version fetched from storage at read point R is known valid from its page LSN up to R. It may be
 * left open only if the page has not been written after R: `lastWrite` (a hashed table of the
 * highest LSN written to any page of a bucket, updated by the writer under the lock) proves that
 * conservatively; otherwise it is closed at R.
 *
 * Eviction (CLOCK with a reference bit) takes only versions whose redo is durable (from ≤ VDL): a
 * version above VDL exists nowhere else (storage may not have it yet) and the writer may need it.
 * Garbage — a closed version below VDL that no read point in use falls into, so no snapshot present or
 * future can see it — goes first, without a second chance; and whenever the writer publishes a page,
 * that page's garbage versions are freed on the spot, which keeps the hash chains of hot pages (page 1
 * changes with every commit) short. LAL (invariant 6) bounds the versions above VDL, and the engine sizes the pool so they
 * always fit (`assertFitsLal`).
 *
 * Concurrency: one futex-style mutex in the buffer guards all metadata and page copies; it is held
 * for a hash walk and a page copy, never across a hop. Only workers take it (Atomics.wait may block);
 * the main thread never touches the pool on the data path.
 */
import { assert } from "../../core/assert.js";
import type { SharedControl } from "./shared-control.js";

const H_LOCK = 0;
const H_HAND = 1;
const H_NSLOTS = 2;
const H_NBUCKETS = 3;
const H_PAGE_SIZE = 4;
const H_NWRITE_BUCKETS = 5;
const H_FREE_TOP = 6;
const HEADER_I32 = 16;

const S_HITS = 0;
const S_MISSES = 1;
const S_INSERTS = 2;
const S_EVICTIONS = 3;
const S_INSERT_FAILURES = 4;
const STAT_WORDS = 8;

const NIL = -1;
const SPIN_LIMIT = 200;

export interface PoolStats {
  readonly slots: number;
  readonly hits: number;
  readonly misses: number;
  readonly inserts: number;
  readonly evictions: number;
  readonly insertFailures: number;
}

export interface PageVersionIn {
  readonly pageNo: number;
  readonly lsn: number;
  readonly bytes: Uint8Array;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function log2(n: number): number {
  return 31 - Math.clz32(n);
}

export class BufferPool {
  readonly sab: SharedArrayBuffer;
  readonly pageSize: number;
  readonly nSlots: number;
  private readonly header: Int32Array;
  private readonly stat: Float64Array;
  private readonly buckets: Int32Array;
  private readonly next: Int32Array;
  private readonly page: Uint32Array;
  private readonly ref: Uint8Array;
  private readonly from: Float64Array;
  private readonly to: Float64Array;
  private readonly freeList: Int32Array;
  private readonly lastWrite: Float64Array;
  private readonly data: Uint8Array;
  private readonly bucketShift: number;
  private readonly writeShift: number;
  /** Scratch for the read points in use (per thread: each worker has its own BufferPool object). */
  private readonly points: number[] = [];

  private constructor(sab: SharedArrayBuffer, private readonly control: SharedControl) {
    this.sab = sab;
    this.header = new Int32Array(sab, 0, HEADER_I32);
    const nSlots = this.header[H_NSLOTS]!;
    const nBuckets = this.header[H_NBUCKETS]!;
    const nWrite = this.header[H_NWRITE_BUCKETS]!;
    this.pageSize = this.header[H_PAGE_SIZE]!;
    this.nSlots = nSlots;
    const l = BufferPool.layout(nSlots, nBuckets, nWrite, this.pageSize);
    this.stat = new Float64Array(sab, l.stat, STAT_WORDS);
    this.buckets = new Int32Array(sab, l.buckets, nBuckets);
    this.next = new Int32Array(sab, l.next, nSlots);
    this.page = new Uint32Array(sab, l.page, nSlots);
    this.from = new Float64Array(sab, l.from, nSlots);
    this.to = new Float64Array(sab, l.to, nSlots);
    this.freeList = new Int32Array(sab, l.free, nSlots);
    this.lastWrite = new Float64Array(sab, l.lastWrite, nWrite);
    this.ref = new Uint8Array(sab, l.ref, nSlots);
    this.data = new Uint8Array(sab, l.data, nSlots * this.pageSize);
    this.bucketShift = 32 - log2(nBuckets);
    this.writeShift = 32 - log2(nWrite);
  }

  private static layout(nSlots: number, nBuckets: number, nWrite: number, pageSize: number) {
    let off = HEADER_I32 * 4;
    const stat = off; off = align8(off + STAT_WORDS * 8);
    const from = off; off = align8(off + nSlots * 8);
    const to = off; off = align8(off + nSlots * 8);
    const lastWrite = off; off = align8(off + nWrite * 8);
    const buckets = off; off = align8(off + nBuckets * 4);
    const next = off; off = align8(off + nSlots * 4);
    const page = off; off = align8(off + nSlots * 4);
    const free = off; off = align8(off + nSlots * 4);
    const ref = off; off = align8(off + nSlots);
    const data = off; off = align8(off + nSlots * pageSize);
    return { stat, from, to, lastWrite, buckets, next, page, free, ref, data, total: off };
  }

  /** Main thread, at engine start: a pool of about `sizeBytes` of pages. */
  static create(sizeBytes: number, pageSize: number, control: SharedControl): BufferPool {
    const nSlots = Math.max(16, Math.floor(sizeBytes / pageSize));
    assert(nSlots < 2 ** 31 / 4, "buffer pool slot count fits Int32 indexes");
    const nBuckets = Math.max(16, 1 << Math.ceil(Math.log2(nSlots * 2)));
    const nWrite = Math.max(1024, 1 << Math.ceil(Math.log2(nSlots * 4)));
    const l = BufferPool.layout(nSlots, nBuckets, nWrite, pageSize);
    const sab = new SharedArrayBuffer(l.total);
    const header = new Int32Array(sab, 0, HEADER_I32);
    header[H_NSLOTS] = nSlots;
    header[H_NBUCKETS] = nBuckets;
    header[H_NWRITE_BUCKETS] = nWrite;
    header[H_PAGE_SIZE] = pageSize;
    const pool = new BufferPool(sab, control);
    pool.buckets.fill(NIL);
    pool.next.fill(NIL);
    // Free slots are taken from the top of the stack: hand out slot 0 first.
    for (let i = 0; i < nSlots; i++) pool.freeList[i] = nSlots - 1 - i;
    header[H_FREE_TOP] = nSlots;
    return pool;
  }

  static attach(sab: SharedArrayBuffer, control: SharedControl): BufferPool {
    return new BufferPool(sab, control);
  }

  /** The writer's versions above VDL must always fit: at most `lal` of them exist (invariant 6). */
  assertFitsLal(lal: number): void {
    assert(lal * 2 <= this.nSlots, 6, `LAL ${lal} needs a buffer pool of at least ${lal * 2} pages (have ${this.nSlots})`);
  }

  // ------------------------------------------------------------------------------------ reads

  /**
   * Copies `length` bytes at `inPage` of the version of `pageNo` visible at `readPoint` into `dst` at
   * `dstOffset`. Returns that version's LSN, or -1 on a miss.
   */
  read(pageNo: number, readPoint: number, dst: Uint8Array, dstOffset: number, inPage = 0, length = this.pageSize): number {
    this.lock();
    try {
      for (let s = this.buckets[this.bucketOf(pageNo)]!; s !== NIL; s = this.next[s]!) {
        if (this.page[s] === pageNo && this.from[s]! <= readPoint && readPoint <= this.to[s]!) {
          this.ref[s] = 1;
          const base = s * this.pageSize + inPage;
          dst.set(this.data.subarray(base, base + length), dstOffset);
          this.stat[S_HITS]!++;
          return this.from[s]!;
        }
      }
      this.stat[S_MISSES]!++;
      return -1;
    } finally {
      this.unlock();
    }
  }

  // ---------------------------------------------------------------------------------- inserts

  /**
   * Writer only: the new versions of one commit. Closes each page's previous newest version and
   * records the writes in `lastWrite`, all under one lock hold, before the commit's records are
   * handed to the main thread.
   */
  publish(versions: readonly PageVersionIn[]): void {
    this.lock();
    try {
      const vdl = this.control.vdl();
      const points = this.control.activeReadPoints(this.points);
      for (const v of versions) {
        assert(v.bytes.byteLength === this.pageSize, "published page has the pool's page size");
        assert(v.lsn > vdl, 7, `a new version (page ${v.pageNo} at ${v.lsn}) is above VDL ${vdl} when published`);
        const wb = this.writeBucketOf(v.pageNo);
        if (this.lastWrite[wb]! < v.lsn) this.lastWrite[wb] = v.lsn;
        let garbage = NIL;
        for (let s = this.buckets[this.bucketOf(v.pageNo)]!; s !== NIL;) {
          const next = this.next[s]!;
          if (this.page[s] === v.pageNo) {
            if (this.to[s] === Infinity) {
              assert(this.from[s]! < v.lsn, 1, `page ${v.pageNo}: new version ${v.lsn} after ${this.from[s]}`);
              this.to[s] = v.lsn - 1;
            }
            if (this.isGarbage(s, vdl, points)) {
              if (garbage === NIL) garbage = s;
              else this.release(s);
            }
          }
          s = next;
        }
        let s = garbage;
        if (s !== NIL) this.unlink(s);
        else s = this.victim(vdl, points);
        assert(s !== NIL, 6, `buffer pool full of versions above VDL ${vdl}: LAL too large for the pool`);
        this.fill(s, v.pageNo, v.lsn, Infinity, v.bytes);
      }
    } finally {
      this.unlock();
    }
  }

  /**
   * A version read from storage at `fetchedAt` (its page LSN is `pageLsn`). Skipped when the pool
   * already has a version visible there, or when no slot can be freed.
   */
  insertFetched(pageNo: number, pageLsn: number, fetchedAt: number, bytes: Uint8Array): void {
    assert(pageLsn <= fetchedAt, 7, `storage returned page ${pageNo} at LSN ${pageLsn} for read point ${fetchedAt}`);
    assert(bytes.byteLength === this.pageSize, "fetched page has the pool's page size");
    this.lock();
    try {
      for (let s = this.buckets[this.bucketOf(pageNo)]!; s !== NIL; s = this.next[s]!) {
        if (this.page[s] === pageNo && this.from[s]! <= fetchedAt && fetchedAt <= this.to[s]!) return;
      }
      const to = this.lastWrite[this.writeBucketOf(pageNo)]! > fetchedAt ? fetchedAt : Infinity;
      const s = this.victim(this.control.vdl(), this.control.activeReadPoints(this.points));
      if (s === NIL) {
        this.stat[S_INSERT_FAILURES]!++;
        return;
      }
      this.fill(s, pageNo, pageLsn, to, bytes);
    } finally {
      this.unlock();
    }
  }

  stats(): PoolStats {
    this.lock();
    try {
      return {
        slots: this.nSlots,
        hits: this.stat[S_HITS]!,
        misses: this.stat[S_MISSES]!,
        inserts: this.stat[S_INSERTS]!,
        evictions: this.stat[S_EVICTIONS]!,
        insertFailures: this.stat[S_INSERT_FAILURES]!,
      };
    } finally {
      this.unlock();
    }
  }

  // -------------------------------------------------------------------------------- internals

  private bucketOf(pageNo: number): number {
    return Math.imul(pageNo, 0x9e3779b1) >>> this.bucketShift;
  }

  private writeBucketOf(pageNo: number): number {
    return Math.imul(pageNo ^ 0x5bd1e995, 0x85ebca6b) >>> this.writeShift;
  }

  private fill(s: number, pageNo: number, from: number, to: number, bytes: Uint8Array): void {
    this.page[s] = pageNo;
    this.from[s] = from;
    this.to[s] = to;
    this.ref[s] = 1;
    this.data.set(bytes, s * this.pageSize);
    const b = this.bucketOf(pageNo);
    this.next[s] = this.buckets[b]!;
    this.buckets[b] = s;
    this.stat[S_INSERTS]!++;
  }

  /** A closed version below VDL that no read point in use can see. */
  private isGarbage(s: number, vdl: number, points: readonly number[]): boolean {
    const to = this.to[s]!;
    if (to >= vdl) return false; // a snapshot starting now may see it
    const from = this.from[s]!;
    for (const p of points) if (p >= from && p <= to) return false;
    return true;
  }

  /** Unlinks slot `s` and returns it to the free list. */
  private release(s: number): void {
    this.unlink(s);
    const top = this.header[H_FREE_TOP]!;
    this.freeList[top] = s;
    this.header[H_FREE_TOP] = top + 1;
    this.stat[S_EVICTIONS]!++;
  }

  /** A free slot, or the CLOCK victim among durable versions, unlinked; NIL if none can be freed. */
  private victim(vdl: number, points: readonly number[]): number {
    const top = this.header[H_FREE_TOP]!;
    if (top > 0) {
      this.header[H_FREE_TOP] = top - 1;
      return this.freeList[top - 1]!;
    }
    let hand = this.header[H_HAND]!;
    for (let i = 0; i < 2 * this.nSlots; i++) {
      const s = hand;
      hand = hand + 1 === this.nSlots ? 0 : hand + 1;
      if (this.from[s]! > vdl) continue; // only copy of redo not yet durable
      if (this.ref[s] === 1 && !this.isGarbage(s, vdl, points)) {
        this.ref[s] = 0;
        continue;
      }
      this.header[H_HAND] = hand;
      this.unlink(s);
      this.stat[S_EVICTIONS]!++;
      return s;
    }
    this.header[H_HAND] = hand;
    return NIL;
  }

  private unlink(s: number): void {
    const b = this.bucketOf(this.page[s]!);
    let prev = NIL;
    for (let c = this.buckets[b]!; c !== NIL; prev = c, c = this.next[c]!) {
      if (c !== s) continue;
      if (prev === NIL) this.buckets[b] = this.next[c]!;
      else this.next[prev] = this.next[c]!;
      this.next[s] = NIL;
      this.page[s] = 0;
      return;
    }
    assert(false, `buffer pool slot ${s} not found in its bucket`);
  }

  private lock(): void {
    const h = this.header;
    if (Atomics.compareExchange(h, H_LOCK, 0, 1) === 0) return;
    for (let i = 0; i < SPIN_LIMIT; i++) {
      if (Atomics.load(h, H_LOCK) === 0 && Atomics.compareExchange(h, H_LOCK, 0, 1) === 0) return;
    }
    // Contended: mark "locked with waiters" (2) and sleep until the holder hands over.
    while (Atomics.exchange(h, H_LOCK, 2) !== 0) Atomics.wait(h, H_LOCK, 2);
  }

  private unlock(): void {
    const h = this.header;
    if (Atomics.sub(h, H_LOCK, 1) !== 1) {
      Atomics.store(h, H_LOCK, 0);
      Atomics.notify(h, H_LOCK, 1);
    }
  }
}
