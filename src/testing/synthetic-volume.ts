/**
 * A synthetic writer for tests and benchmarks of the storage service without SQL: it produces valid
 * mini-transactions for the production `VolumeIO` (`VolumeWriter`) and keeps a naive model of what
 * every page must read as at every consistency point.
 *
 * The MTRs obey `volume-io.ts`'s contract exactly as the engine's `RedoWriter` does: consecutive LSNs
 * from the recovered `LsnState` (invariant 1), records sorted by page (hence per PG), the CPL last
 * (invariant 4), segment / page / volume backlinks, and byte-range diffs (or full images) from
 * `redo-payload.ts`. Pages are chosen at random across every PG, from a seeded generator, so a failing
 * run is replayed from its seed.
 *
 * The model is deliberately naive — every version of every page, as whole bytes — so that it cannot
 * share a bug with the storage node's materialization (diffs applied over images, records in LMDB
 * and in memory). `keepHistory: false` keeps only the newest version (benchmarks: constant memory).
 */
import { assert } from "../core/assert.js";
import { Lsn, NO_LSN, PageNo, PgId, type Epoch } from "../core/types.js";
import { RecordFlag, type RedoRecord } from "../wire/record.js";
import { diffOrImage } from "../wire/redo-payload.js";
import { pgOfPage, type LsnState, type MiniTransaction, type MtrRecord } from "../compute/volume-io.js";

/** mulberry32: a tiny, fast, seedable PRNG; good enough to pick pages and bytes. */
export class Prng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    assert(n >= 1, "Prng.int of an empty range");
    return Math.floor(this.float() * n);
  }

  fill(bytes: Uint8Array): void {
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      const v = this.u32();
      bytes[i] = v & 0xff;
      bytes[i + 1] = (v >>> 8) & 0xff;
      bytes[i + 2] = (v >>> 16) & 0xff;
      bytes[i + 3] = v >>> 24;
    }
    for (; i < bytes.length; i++) bytes[i] = this.u32() & 0xff;
  }
}

/** A seed for a test run: `BOREALIS_SEED` when set (to replay a failure), otherwise a fresh one. */
export function seedFromEnv(): number {
  const v = process.env["BOREALIS_SEED"];
  if (v !== undefined && v !== "") {
    const n = Number(v);
    assert(Number.isSafeInteger(n) && n >= 0, `BOREALIS_SEED must be a non-negative integer, got "${v}"`);
    return n >>> 0;
  }
  return Math.floor(Math.random() * 2 ** 32) >>> 0;
}

export interface SyntheticVolumeOptions {
  readonly seed: number;
  readonly pgPages: number;
  /** Pages are written across this many PGs (pages 1 … pgPages × pgCount). */
  readonly pgCount: number;
  readonly pageSize: number;
  /** Keep every page version and record (checks at any read point). Default true. */
  readonly keepHistory?: boolean;
  /** Share of records that carry a full image instead of a diff. Default 0.05. */
  readonly fullImageShare?: number;
}

interface Version {
  readonly lsn: Lsn;
  readonly bytes: Uint8Array;
}

/** A record as submitted, with the PG it was filed under (what a segment must hold). */
export interface SubmittedRecord {
  readonly pgId: PgId;
  readonly record: RedoRecord;
}

export class SyntheticVolume {
  readonly pageCount: number;
  private readonly rng: Prng;
  private readonly keepHistory: boolean;
  private readonly fullImageShare: number;
  private epoch: Epoch;
  private nextLsn: number;
  private lastLsnInVolume: Lsn;
  /** Per page: its versions in LSN order (only the newest without history). Page index = pageNo − 1. */
  private readonly versions: Version[][];
  /** Per PG: LSNs of its records, in order (only the last without history). */
  private readonly pgLsns: Lsn[][];
  /** Commit LSNs (CPLs), in order. */
  private readonly commitLsns: Lsn[] = [];
  /** Every record submitted, by LSN (with history only). */
  private readonly records = new Map<number, SubmittedRecord>();
  private readonly zeros: Uint8Array;

  constructor(private readonly options: SyntheticVolumeOptions, state: LsnState) {
    assert(options.pgPages >= 1 && options.pgCount >= 1 && options.pageSize >= 512, "synthetic volume geometry");
    this.pageCount = options.pgPages * options.pgCount;
    this.rng = new Prng(options.seed);
    this.keepHistory = options.keepHistory ?? true;
    this.fullImageShare = options.fullImageShare ?? 0.05;
    this.versions = Array.from({ length: this.pageCount }, () => []);
    this.pgLsns = Array.from({ length: options.pgCount }, () => []);
    this.zeros = new Uint8Array(options.pageSize);
    assert(state.vdl === NO_LSN && [...state.lastLsnByPg.values()].every((l) => l === NO_LSN), "a synthetic volume starts on an empty volume (resume() continues one)");
    this.epoch = state.epoch;
    this.nextLsn = state.nextLsn;
    this.lastLsnInVolume = state.vdl;
  }

  /** The CPL of the last MTR produced (the writer's newest snapshot). */
  get lastCommitLsn(): Lsn {
    return this.commitLsns[this.commitLsns.length - 1] ?? this.lastLsnInVolume;
  }

  /** Every commit LSN produced and not truncated, in order. */
  get cpls(): readonly Lsn[] {
    return this.commitLsns;
  }

  /**
   * The next mini-transaction: `records` (default 1–4 at random) distinct random pages, each changed
   * by a few byte ranges (or rewritten whole), with LSNs, backlinks and the CPL as the writer makes them.
   */
  nextMtr(records?: number): MiniTransaction {
    const n = Math.min(this.pageCount, records ?? 1 + this.rng.int(4));
    assert(n >= 1, "an MTR has at least one record");
    const pages = new Set<number>();
    for (let guard = 0; pages.size < n && guard < 100 * n; guard++) pages.add(1 + this.rng.int(this.pageCount));
    for (let p = 1; pages.size < n; p++) pages.add(p);
    const sorted = [...pages].sort((a, b) => a - b);
    const firstLsn = this.nextLsn;
    const out: MtrRecord[] = [];
    for (let i = 0; i < sorted.length; i++) {
      const pageNo = sorted[i]!;
      const lsn = Lsn(firstLsn + i);
      const pgId = pgOfPage(pageNo, this.options.pgPages);
      const history = this.versions[pageNo - 1]!;
      const prev = history[history.length - 1];
      const before = prev?.bytes ?? this.zeros;
      const after = this.edit(before);
      const forceImage = this.rng.float() < this.fullImageShare;
      const p = diffOrImage(forceImage ? null : before, after, RecordFlag.FULL_IMAGE);
      assert(p !== null, "an edited page differs from its previous version");
      const pgHistory = this.pgLsns[pgId]!;
      const record: RedoRecord = {
        lsn,
        epoch: this.epoch,
        pageNo: PageNo(pageNo),
        prevLsnInSegment: pgHistory[pgHistory.length - 1] ?? NO_LSN,
        prevLsnOfPage: prev?.lsn ?? NO_LSN,
        prevLsnInVolume: i === 0 ? this.lastLsnInVolume : Lsn(lsn - 1),
        flags: p.flags | (i === sorted.length - 1 ? RecordFlag.CPL : 0),
        payload: p.payload,
      };
      out.push({ pgId: PgId(pgId), record });
      if (this.keepHistory) {
        history.push({ lsn, bytes: after });
        pgHistory.push(lsn);
        this.records.set(lsn, { pgId: PgId(pgId), record });
      } else {
        history[0] = { lsn, bytes: after };
        pgHistory[0] = lsn;
      }
    }
    const commitLsn = Lsn(firstLsn + sorted.length - 1);
    this.nextLsn = commitLsn + 1;
    this.lastLsnInVolume = commitLsn;
    if (this.keepHistory) this.commitLsns.push(commitLsn);
    else this.commitLsns[0] = commitLsn;
    return { epoch: this.epoch, firstLsn: Lsn(firstLsn), commitLsn, records: out };
  }

  /** The page as the model has it at `readPoint`: bytes and the LSN of its last record (0: never written). */
  pageAt(pageNo: number, readPoint: Lsn): { bytes: Uint8Array; pageLsn: Lsn } {
    this.needHistory();
    const v = lastAtOrBelow(this.versions[pageNo - 1]!, readPoint, (x) => x.lsn);
    return v === undefined ? { bytes: this.zeros, pageLsn: NO_LSN } : { bytes: v.bytes, pageLsn: v.lsn };
  }

  /** The PG's last record at or below `readPoint` (0: none): the `minScl` of a read there. */
  lastLsnInPgAt(pgId: PgId, readPoint: Lsn): Lsn {
    this.needHistory();
    return lastAtOrBelow(this.pgLsns[pgId]!, readPoint, (x) => x) ?? NO_LSN;
  }

  /** Every record of `pgId` with LSN in (after, upTo], in LSN order. */
  recordsOfPg(pgId: PgId, after: Lsn, upTo: Lsn): SubmittedRecord[] {
    this.needHistory();
    const out: SubmittedRecord[] = [];
    for (const lsn of this.pgLsns[pgId]!) if (lsn > after && lsn <= upTo) out.push(this.records.get(lsn)!);
    return out;
  }

  /** The record submitted at `lsn`, if any. */
  record(lsn: Lsn): SubmittedRecord | undefined {
    return this.records.get(lsn);
  }

  /**
   * Continues after a writer recovery: drops everything above the recovered VDL (recovery annulled
   * it), checks that recovery found each PG's last record where the model has it, and allocates from
   * the new epoch's `nextLsn` on. Returns how many commits were dropped.
   */
  resume(state: LsnState): number {
    this.needHistory();
    const vdl = state.vdl;
    assert(state.epoch > this.epoch, 8, `recovery raised the epoch (${this.epoch} → ${state.epoch})`);
    assert(vdl === NO_LSN || this.commitLsns.includes(vdl), 4, `recovered VDL ${vdl} is a CPL this writer produced`);
    let dropped = 0;
    while (this.commitLsns.length > 0 && this.commitLsns[this.commitLsns.length - 1]! > vdl) {
      this.commitLsns.pop();
      dropped++;
    }
    for (const h of this.versions) while (h.length > 0 && h[h.length - 1]!.lsn > vdl) h.pop();
    for (const h of this.pgLsns) while (h.length > 0 && h[h.length - 1]! > vdl) h.pop();
    for (const lsn of [...this.records.keys()]) if (lsn > vdl) this.records.delete(lsn);
    for (let pg = 0; pg < this.pgLsns.length; pg++) {
      const model = this.pgLsns[pg]![this.pgLsns[pg]!.length - 1] ?? NO_LSN;
      const recovered = state.lastLsnByPg.get(PgId(pg)) ?? NO_LSN;
      assert(model === recovered, 8, `recovery says PG ${pg} ends at LSN ${recovered}, the model at ${model}`);
    }
    // An LSN never names two records: the new epoch allocates above everything the old one allocated.
    assert(state.nextLsn >= this.nextLsn, 1, `allocation resumes at ${state.nextLsn}, but LSN ${this.nextLsn - 1} was allocated before`);
    this.epoch = state.epoch;
    this.nextLsn = state.nextLsn;
    this.lastLsnInVolume = vdl;
    return dropped;
  }

  /** A new version of a page: mostly a few small byte ranges, sometimes a larger run or a rewrite. */
  private edit(before: Uint8Array): Uint8Array {
    const after = before.slice();
    const size = after.byteLength;
    const roll = this.rng.float();
    if (roll < 0.03) {
      this.rng.fill(after);
    } else {
      const ranges = roll < 0.15 ? 1 : 1 + this.rng.int(4);
      const maxLen = roll < 0.15 ? 512 : 48;
      for (let k = 0; k < ranges; k++) {
        const len = 1 + this.rng.int(maxLen);
        const off = this.rng.int(size - len + 1);
        this.rng.fill(after.subarray(off, off + len));
      }
    }
    // Random bytes may equal the old ones: make sure the version differs (an MTR record always changes its page).
    const at = this.rng.int(size);
    if (after[at] === before[at]) after[at] = before[at]! ^ 0xff;
    return after;
  }

  private needHistory(): void {
    assert(this.keepHistory, "this synthetic volume keeps no history");
  }
}

/** The last element with key ≤ bound in a list sorted by key (binary search). */
function lastAtOrBelow<T>(list: readonly T[], bound: number, key: (x: T) => number): T | undefined {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(list[mid]!) <= bound) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? undefined : list[lo - 1];
}

export interface SyntheticStreamOptions {
  readonly seed: number;
  readonly pgPages: number;
  readonly pgCount: number;
  readonly pageSize: number;
  /** Distinct payloads made up front and reused in turn. Default 1024. */
  readonly payloadPool?: number;
}

/**
 * The benchmark's MTR source: the same MTR shape and backlinks as `SyntheticVolume`, without a model,
 * at a cost of well under a microsecond per record — so a benchmark measures the volume client and
 * storage, not page diffing in the load generator. Payloads are real byte-range diffs (`diffOrImage`
 * of a random small edit, the size of a single-row SQLite change: tens to a couple of hundred bytes),
 * made once and reused; storage applies any well-formed diff to any page, so the records are valid.
 */
export class SyntheticStream {
  readonly pageCount: number;
  private readonly rng: Prng;
  private readonly payloads: Uint8Array[] = [];
  private next = 0;
  private epoch: Epoch;
  private nextLsn: number;
  private lastLsnInVolume: number;
  private readonly pageLsn: Float64Array;
  private readonly pgLsn: Float64Array;
  payloadBytes = 0;
  records = 0;

  constructor(private readonly options: SyntheticStreamOptions, state: LsnState) {
    this.pageCount = options.pgPages * options.pgCount;
    this.rng = new Prng(options.seed);
    this.epoch = state.epoch;
    this.nextLsn = state.nextLsn;
    this.lastLsnInVolume = state.vdl;
    assert(state.vdl === NO_LSN && [...state.lastLsnByPg.values()].every((l) => l === NO_LSN), "a synthetic stream starts on an empty volume");
    this.pageLsn = new Float64Array(this.pageCount + 1);
    this.pgLsn = new Float64Array(options.pgCount);
    const page = new Uint8Array(options.pageSize);
    for (let i = 0; i < (options.payloadPool ?? 1024); i++) {
      this.rng.fill(page);
      const after = page.slice();
      const ranges = 1 + this.rng.int(3);
      for (let k = 0; k < ranges; k++) {
        const len = 4 + this.rng.int(60);
        const off = this.rng.int(options.pageSize - len + 1);
        for (let j = off; j < off + len; j++) after[j] = page[j]! ^ (1 + this.rng.int(255));
      }
      const p = diffOrImage(page, after, RecordFlag.FULL_IMAGE);
      assert(p !== null && p.flags === 0, "a small edit is a diff");
      this.payloads.push(p.payload);
    }
  }

  /** The next MTR: `records` distinct pages (a random run of consecutive pages, wrapping), sorted. */
  nextMtr(records: number): MiniTransaction {
    const n = Math.min(records, this.pageCount);
    const start = this.rng.int(this.pageCount);
    const pages: number[] = [];
    for (let i = 0; i < n; i++) pages.push(1 + ((start + i) % this.pageCount));
    pages.sort((a, b) => a - b);
    const firstLsn = this.nextLsn;
    const out: MtrRecord[] = [];
    for (let i = 0; i < n; i++) {
      const pageNo = pages[i]!;
      const lsn = firstLsn + i;
      const pgId = pgOfPage(pageNo, this.options.pgPages);
      const payload = this.payloads[this.next]!;
      this.next = (this.next + 1) % this.payloads.length;
      out.push({
        pgId,
        record: {
          lsn: Lsn(lsn), epoch: this.epoch, pageNo: PageNo(pageNo),
          prevLsnInSegment: Lsn(this.pgLsn[pgId]!), prevLsnOfPage: Lsn(this.pageLsn[pageNo]!),
          prevLsnInVolume: Lsn(i === 0 ? this.lastLsnInVolume : lsn - 1),
          flags: i === n - 1 ? RecordFlag.CPL : 0, payload,
        },
      });
      this.pgLsn[pgId] = lsn;
      this.pageLsn[pageNo] = lsn;
      this.payloadBytes += payload.byteLength;
    }
    this.records += n;
    const commitLsn = firstLsn + n - 1;
    this.nextLsn = commitLsn + 1;
    this.lastLsnInVolume = commitLsn;
    return { epoch: this.epoch, firstLsn: Lsn(firstLsn), commitLsn: Lsn(commitLsn), records: out };
  }
}
