/**
 * Shared pieces of the storage tests: temp directories, an env over a (wrapped) real disk, and a
 * model writer that produces one PG's records with correct backlinks plus the naive page model the
 * node is compared with (apply every record ≤ read point, from zeros).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Az, Epoch, Lsn, NodeId, PageNo, PgId, VolumeId, type Epochs, type SegmentKey } from "../../src/core/types.js";
import type { Disk, DiskFile, Env } from "../../src/env/env.js";
import { realClock, realDisk, realNetwork, realRandom, silentLogger } from "../../src/env/real.js";
import type { SegmentGeometry } from "../../src/wire/messages.js";
import { RecordFlag, encodeRecord, type EncodedRecord } from "../../src/wire/record.js";
import { applyRedo, encodePageDiff } from "../../src/wire/redo-payload.js";
import type { StorageNodeConfig } from "../../src/storage/storage-node.js";

export async function tempDir(prefix = "borealis-storage-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function testEnv(disk: Disk = realDisk): Env {
  return { clock: realClock, random: realRandom, disk, network: realNetwork, log: silentLogger };
}

export const epochs1: Epochs = { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) };

export function geometry(volumeId = "vol", pgId = 0, firstPage = 1, pageCount = 64, pageSize = 512): SegmentGeometry {
  return { volumeId: VolumeId(volumeId), pgId: PgId(pgId), firstPage: PageNo(firstPage), pageCount, pageSize };
}

export function keyOf(g: SegmentGeometry): SegmentKey {
  return { volumeId: g.volumeId, pgId: g.pgId };
}

export function nodeConfig(dataDir: string, overrides: Partial<StorageNodeConfig> = {}): StorageNodeConfig {
  return { nodeId: NodeId("n1"), az: Az("az1"), dataDir, backgroundWork: false, ...overrides };
}

/** A tiny deterministic PRNG so property-style loops replay from a seed without fast-check. */
export function prng(seed: number): { int(n: number): number; float(): number } {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
  return { int: (n) => next() % n, float: () => next() / 2 ** 32 };
}

/**
 * Produces the records one writer would send to one PG: LSNs strictly increasing (gaps stand for
 * other PGs' records), backlinks correct, payloads random diffs or full images. Keeps the current
 * page images so the diffs are real diffs.
 */
export class ModelWriter {
  readonly records: EncodedRecord[] = [];
  private lastInSegment = Lsn(0);
  private lastInVolume = Lsn(0);
  private readonly lastOfPage = new Map<number, Lsn>();
  private readonly pages = new Map<number, Uint8Array>();

  constructor(readonly geometry: SegmentGeometry, public epoch = Epoch(1), private lsn = 0) {}

  get key(): SegmentKey {
    return keyOf(this.geometry);
  }

  /** The next record for `pageNo`; `skip` LSNs are left for other PGs first. */
  next(rand: { int(n: number): number }, pageNo: number, options: { full?: boolean; skip?: number; cpl?: boolean } = {}): EncodedRecord {
    this.lsn += 1 + (options.skip ?? 0);
    const lsn = Lsn(this.lsn);
    const size = this.geometry.pageSize;
    const before = this.pages.get(pageNo);
    const after = (before ?? new Uint8Array(size)).slice();
    const edits = 1 + rand.int(6);
    for (let i = 0; i < edits; i++) {
      const at = rand.int(size);
      const len = 1 + rand.int(Math.min(24, size - at));
      for (let j = 0; j < len; j++) after[at + j] = rand.int(256);
    }
    let flags = options.cpl === false ? 0 : RecordFlag.CPL;
    let payload: Uint8Array;
    const diff = before === undefined || options.full ? null : encodePageDiff(before, after);
    if (diff === null || diff.byteLength >= size) {
      flags |= RecordFlag.FULL_IMAGE;
      payload = after;
    } else {
      payload = diff;
    }
    const record = encodeRecord({
      lsn, epoch: this.epoch, pageNo: PageNo(pageNo), flags, payload,
      prevLsnInSegment: this.lastInSegment,
      prevLsnOfPage: this.lastOfPage.get(pageNo) ?? Lsn(0),
      prevLsnInVolume: this.lastInVolume,
    }, this.key);
    this.lastInSegment = lsn;
    this.lastInVolume = lsn;
    this.lastOfPage.set(pageNo, lsn);
    this.pages.set(pageNo, after);
    this.records.push(record);
    return record;
  }

  /** Continues from `lsn` as a new writer would after recovery (its chain links to `lastInSegment`). */
  resetTo(lsn: number, lastInSegment: number, epoch: Epoch): void {
    this.lsn = lsn;
    this.lastInVolume = Lsn(lsn);
    this.lastInSegment = Lsn(lastInSegment);
    this.epoch = epoch;
    const kept = this.records.filter((r) => r.lsn <= lastInSegment);
    this.records.length = 0;
    this.records.push(...kept);
    this.pages.clear();
    this.lastOfPage.clear();
    for (const r of kept) {
      const page = this.pages.get(r.pageNo) ?? new Uint8Array(this.geometry.pageSize);
      applyRedo(page, r);
      this.pages.set(r.pageNo, page);
      this.lastOfPage.set(r.pageNo, r.lsn);
    }
  }
}

/** The naive model: page `pageNo` at `readPoint`, from zeros, applying every record ≤ it in LSN order. */
export function modelPage(records: readonly EncodedRecord[], pageNo: number, readPoint: number, pageSize: number): { pageLsn: number; bytes: Uint8Array } {
  const bytes = new Uint8Array(pageSize);
  let pageLsn = 0;
  for (const r of [...records].sort((a, b) => a.lsn - b.lsn)) {
    if (r.pageNo !== pageNo || r.lsn > readPoint) continue;
    applyRedo(bytes, r);
    pageLsn = r.lsn;
  }
  return { pageLsn, bytes };
}

/** The naive SCL: walk the chain from 0 through the records held, by backlink. */
export function modelScl(held: readonly { lsn: number; prevLsnInSegment: number }[]): number {
  const byPrev = new Map<number, number>();
  for (const r of held) byPrev.set(r.prevLsnInSegment, r.lsn);
  let scl = 0;
  while (byPrev.has(scl)) scl = byPrev.get(scl)!;
  return scl;
}

/**
 * A plain in-memory `Disk` (no latency, no faults, everything durable at once): lets the format tests
 * replay thousands of damaged logs per second. Real-file tests cover the real disk.
 */
export class MemoryDisk implements Disk {
  readonly files = new Map<string, Uint8Array>();
  private readonly dirs = new Set<string>(["/"]);

  async open(p: string, options: { create: boolean }): Promise<DiskFile> {
    if (!this.files.has(p)) {
      if (!options.create) throw new Error(`ENOENT: ${p}`);
      this.files.set(p, new Uint8Array(0));
    }
    const files = this.files;
    const get = () => {
      const b = files.get(p);
      if (b === undefined) throw new Error(`ENOENT: ${p} was removed`);
      return b;
    };
    return {
      path: p,
      size: async () => get().byteLength,
      read: async (offset, length) => get().slice(offset, offset + length),
      write: async (offset, bytes) => {
        const chunks = bytes instanceof Uint8Array ? [bytes] : bytes;
        let at = offset;
        for (const c of chunks) {
          let b = get();
          if (at + c.byteLength > b.byteLength) {
            const grown = new Uint8Array(at + c.byteLength);
            grown.set(b);
            files.set(p, (b = grown));
          }
          b.set(c, at);
          at += c.byteLength;
        }
      },
      sync: async () => {},
      truncate: async (length) => {
        const b = get();
        const out = new Uint8Array(length);
        out.set(b.subarray(0, Math.min(length, b.byteLength)));
        files.set(p, out);
      },
      close: async () => {},
    };
  }

  async exists(p: string): Promise<boolean> {
    return this.files.has(p) || this.dirs.has(p);
  }

  async list(dir: string): Promise<string[]> {
    return [...this.files.keys()].filter((p) => path.dirname(p) === dir).map((p) => path.basename(p)).sort();
  }

  async mkdirp(dir: string): Promise<void> {
    for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) this.dirs.add(d);
  }

  async remove(p: string): Promise<void> {
    this.files.delete(p);
  }

  async rename(from: string, to: string): Promise<void> {
    const b = this.files.get(from);
    if (b === undefined) throw new Error(`ENOENT: ${from}`);
    this.files.delete(from);
    this.files.set(to, b);
  }

  async syncDir(): Promise<void> {}

  async writeFileAtomic(p: string, bytes: Uint8Array): Promise<void> {
    this.files.set(p, bytes.slice());
  }

  async readFile(p: string): Promise<Uint8Array> {
    const b = this.files.get(p);
    if (b === undefined) throw new Error(`ENOENT: ${p}`);
    return b.slice();
  }

  /** A copy of the whole disk (to damage one copy per case). */
  clone(): MemoryDisk {
    const d = new MemoryDisk();
    for (const [p, b] of this.files) d.files.set(p, b.slice());
    for (const x of this.dirs) d.dirs.add(x);
    return d;
  }
}
