/**
 * A simulated disk with the failure modes real ones have (reliability.md §3): writes that reach the
 * platter only at fsync, crashes that lose or tear unsynced writes at sector granularity, directory
 * entries that are durable only after the directory is fsynced, fsync errors that silently drop the
 * unsynced data (fsyncgate: a later fsync "succeeds" without it), full disks, and bit rot at rest.
 *
 * Every operation completes after a random latency on the scheduler, owned by the simulated process
 * that issued it: when that process is killed, its pending operations never complete.
 */
import * as path from "node:path";
import type { Disk, DiskFile } from "../env/env.js";
import type { SeededRandom } from "./random.js";
import type { SimProcess } from "./world.js";

export interface DiskFaultConfig {
  /** Probability that an fsync fails with EIO (and drops what it should have made durable). */
  syncErrorRate: number;
  /** Probability that a write fails with EIO. */
  writeErrorRate: number;
  /** On crash, for each unsynced write: probability it is lost entirely, or torn at a sector boundary. */
  crashLoseRate: number;
  crashTearRate: number;
  /** Bytes the disk holds before writes fail with ENOSPC. */
  capacityBytes: number;
  /** Operation latency, uniform in [min, max] milliseconds. */
  latencyMs: readonly [number, number];
  syncLatencyMs: readonly [number, number];
}

export const calmDisk: DiskFaultConfig = {
  syncErrorRate: 0, writeErrorRate: 0, crashLoseRate: 0.5, crashTearRate: 0.25,
  capacityBytes: 1 << 30, latencyMs: [0.01, 0.05], syncLatencyMs: [0.2, 0.5],
};

const SECTOR = 512;

class FsError extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

type PendingWrite = { readonly kind: "write"; readonly offset: number; readonly bytes: Uint8Array } | { readonly kind: "truncate"; readonly length: number };

/** One inode: what reads see now, what survives a crash, and the writes in between. */
class SimInode {
  data: Uint8Array = new Uint8Array(0);
  durable: Uint8Array = new Uint8Array(0);
  pending: PendingWrite[] = [];
}

export class SimDisk implements Disk {
  private names = new Map<string, SimInode>();
  /** Per directory: its entries as of its last fsync (or as of creation of the disk). */
  private durableNames = new Map<string, Map<string, SimInode>>();
  private dirs = new Set<string>(["/"]);
  private owner: SimProcess | undefined;
  private generation = 0;

  constructor(private readonly random: SeededRandom, public faults: DiskFaultConfig = calmDisk) {}

  /** Binds the disk to the process now running on it; its operations complete on that process's clock. */
  attach(owner: SimProcess): void {
    this.owner = owner;
  }

  /** Bytes currently stored. */
  usedBytes(): number {
    let n = 0;
    for (const inode of new Set(this.names.values())) n += inode.data.byteLength;
    return n;
  }

  /**
   * Power loss: every file reverts to its durable image plus a random subset of its unsynced writes,
   * some of them torn; directories revert to their last fsync or keep their newer entries, at random.
   * Open handles die with the process (their generation no longer matches).
   */
  crash(): void {
    this.generation++;
    for (const inode of new Set(this.names.values())) this.crashInode(inode);
    for (const inode of this.allDurableInodes()) this.crashInode(inode);
    const next = new Map<string, SimInode>();
    const dirsOf = new Set<string>([...this.names.keys()].map((p) => path.dirname(p)));
    for (const d of this.durableNames.keys()) dirsOf.add(d);
    for (const dir of dirsOf) {
      const keepNew = this.random.chance(0.5);
      const source = keepNew ? this.entriesOf(dir) : (this.durableNames.get(dir) ?? new Map<string, SimInode>());
      for (const [name, inode] of source) next.set(path.join(dir, name), inode);
      this.durableNames.set(dir, new Map(source));
    }
    this.names = next;
  }

  private *allDurableInodes(): Iterable<SimInode> {
    for (const m of this.durableNames.values()) yield* m.values();
  }

  private crashInode(inode: SimInode): void {
    if (inode.pending.length === 0) {
      inode.data = inode.durable.slice();
      return;
    }
    let image: Uint8Array = inode.durable.slice();
    for (const w of inode.pending) {
      if (this.random.chance(this.faults.crashLoseRate)) continue;
      if (w.kind === "truncate") {
        image = resize(image, w.length);
        continue;
      }
      let bytes = w.bytes;
      if (this.random.chance(this.faults.crashTearRate) && bytes.byteLength > 0) {
        // A torn write: only the sectors before a random boundary made it.
        const sectors = Math.ceil((w.offset + bytes.byteLength) / SECTOR) - Math.floor(w.offset / SECTOR);
        const keepSectors = this.random.int(sectors);
        const keepUntil = Math.min(w.offset + bytes.byteLength, (Math.floor(w.offset / SECTOR) + keepSectors) * SECTOR);
        bytes = bytes.subarray(0, Math.max(0, keepUntil - w.offset));
      }
      if (w.offset + bytes.byteLength > image.byteLength) image = resize(image, w.offset + bytes.byteLength);
      image.set(bytes, w.offset);
    }
    inode.durable = image;
    inode.data = image.slice();
    inode.pending = [];
  }

  /** Flips `count` random bits of a file's stored bytes (bit rot at rest), durable immediately. */
  flipBits(p: string, count = 1, range?: { offset: number; length: number }): void {
    const inode = this.names.get(p);
    if (inode === undefined || inode.data.byteLength === 0) return;
    const lo = range?.offset ?? 0;
    const hi = Math.min(inode.data.byteLength, lo + (range?.length ?? inode.data.byteLength));
    for (let i = 0; i < count && hi > lo; i++) {
      const at = lo + this.random.int(hi - lo);
      const bit = 1 << this.random.int(8);
      inode.data[at]! ^= bit;
      if (at < inode.durable.byteLength) inode.durable[at]! ^= bit;
    }
  }

  /** Every path on the disk (for fault injection that picks a file). */
  paths(): string[] {
    return [...this.names.keys()].sort();
  }

  private entriesOf(dir: string): Map<string, SimInode> {
    const out = new Map<string, SimInode>();
    for (const [p, inode] of this.names) if (path.dirname(p) === dir) out.set(path.basename(p), inode);
    return out;
  }

  /** Completes an operation after a simulated latency, or never if the owning process dies first. */
  private later<T>(latency: readonly [number, number], op: () => T): Promise<T> {
    const owner = this.owner;
    if (owner === undefined) throw new Error("SimDisk used before attach()");
    const generation = this.generation;
    const delay = latency[0] + this.random.float() * (latency[1] - latency[0]);
    return new Promise<T>((resolve, reject) => {
      owner.schedule(delay, () => {
        if (generation !== this.generation) return; // the process crashed: the call never returns
        try {
          resolve(op());
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  private inode(p: string): SimInode {
    const inode = this.names.get(p);
    if (inode === undefined) throw new FsError("ENOENT", `no such file ${p}`);
    return inode;
  }

  open(p: string, options: { create: boolean }): Promise<DiskFile> {
    return this.later(this.faults.latencyMs, () => {
      if (!this.dirs.has(path.dirname(p))) throw new FsError("ENOENT", `no such directory ${path.dirname(p)}`);
      let inode = this.names.get(p);
      if (inode === undefined) {
        if (!options.create) throw new FsError("ENOENT", `no such file ${p}`);
        inode = new SimInode();
        this.names.set(p, inode);
      }
      return new SimFile(this, p, inode, this.generation);
    });
  }

  exists(p: string): Promise<boolean> {
    return this.later(this.faults.latencyMs, () => this.names.has(p) || this.dirs.has(p));
  }

  list(dir: string): Promise<string[]> {
    return this.later(this.faults.latencyMs, () => {
      if (!this.dirs.has(dir)) throw new FsError("ENOENT", `no such directory ${dir}`);
      const out = new Set<string>();
      for (const p of this.names.keys()) if (path.dirname(p) === dir) out.add(path.basename(p));
      for (const d of this.dirs) if (d !== dir && path.dirname(d) === dir) out.add(path.basename(d));
      return [...out].sort();
    });
  }

  mkdirp(dir: string): Promise<void> {
    return this.later(this.faults.latencyMs, () => {
      // Directories are treated as durable at once: the storage code fsyncs its files' directories,
      // and losing an empty directory is not a failure mode worth the model's complexity.
      for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) this.dirs.add(d);
    });
  }

  remove(p: string): Promise<void> {
    return this.later(this.faults.latencyMs, () => {
      this.names.delete(p);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.later(this.faults.latencyMs, () => {
      const inode = this.inode(from);
      this.names.delete(from);
      this.names.set(to, inode);
    });
  }

  syncDir(dir: string): Promise<void> {
    return this.later(this.faults.syncLatencyMs, () => {
      this.durableNames.set(dir, this.entriesOf(dir));
    });
  }

  async writeFileAtomic(p: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${p}.tmp`;
    const f = await this.open(tmp, { create: true });
    await f.truncate(0);
    await f.write(0, bytes);
    await f.sync();
    await f.close();
    await this.rename(tmp, p);
    await this.syncDir(path.dirname(p));
  }

  async readFile(p: string): Promise<Uint8Array> {
    return this.later(this.faults.latencyMs, () => this.inode(p).data.slice());
  }

  // Called by SimFile.

  doWrite(inode: SimInode, generation: number, offset: number, bytes: Uint8Array): Promise<void> {
    const copy = bytes.slice();
    return this.later(this.faults.latencyMs, () => {
      this.checkGeneration(generation);
      if (this.random.chance(this.faults.writeErrorRate)) throw new FsError("EIO", "simulated write error");
      const grow = Math.max(0, offset + copy.byteLength - inode.data.byteLength);
      if (grow > 0 && this.usedBytes() + grow > this.faults.capacityBytes) throw new FsError("ENOSPC", "simulated full disk");
      if (grow > 0) inode.data = resize(inode.data, offset + copy.byteLength);
      inode.data.set(copy, offset);
      inode.pending.push({ kind: "write", offset, bytes: copy });
    });
  }

  doTruncate(inode: SimInode, generation: number, length: number): Promise<void> {
    return this.later(this.faults.latencyMs, () => {
      this.checkGeneration(generation);
      inode.data = resize(inode.data, length);
      inode.pending.push({ kind: "truncate", length });
    });
  }

  doSync(inode: SimInode, generation: number): Promise<void> {
    // What this fsync covers is decided when it is called, as with the real system call.
    const covered = inode.pending.length;
    return this.later(this.faults.syncLatencyMs, () => {
      this.checkGeneration(generation);
      const batch = inode.pending.splice(0, covered);
      if (this.random.chance(this.faults.syncErrorRate)) {
        // fsyncgate: the kernel drops the dirty pages it failed to write and reports the error once.
        throw new FsError("EIO", "simulated fsync error");
      }
      let image: Uint8Array = inode.durable;
      for (const w of batch) {
        if (w.kind === "truncate") image = resize(image, w.length);
        else {
          if (w.offset + w.bytes.byteLength > image.byteLength) image = resize(image, w.offset + w.bytes.byteLength);
          image.set(w.bytes, w.offset);
        }
      }
      inode.durable = image;
    });
  }

  doRead(inode: SimInode, generation: number, offset: number, length: number): Promise<Uint8Array> {
    return this.later(this.faults.latencyMs, () => {
      this.checkGeneration(generation);
      return inode.data.slice(offset, Math.min(inode.data.byteLength, offset + length));
    });
  }

  doSize(inode: SimInode, generation: number): Promise<number> {
    return this.later(this.faults.latencyMs, () => {
      this.checkGeneration(generation);
      return inode.data.byteLength;
    });
  }

  private checkGeneration(generation: number): void {
    if (generation !== this.generation) throw new FsError("EBADF", "file handle from before a crash");
  }
}

class SimFile implements DiskFile {
  constructor(
    private readonly disk: SimDisk,
    readonly path: string,
    private readonly inode: SimInode,
    private readonly generation: number,
  ) {}

  size(): Promise<number> {
    return this.disk.doSize(this.inode, this.generation);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.disk.doRead(this.inode, this.generation, offset, length);
  }

  write(offset: number, bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const one = bytes instanceof Uint8Array ? bytes : concat(bytes);
    return this.disk.doWrite(this.inode, this.generation, offset, one);
  }

  sync(): Promise<void> {
    return this.disk.doSync(this.inode, this.generation);
  }

  truncate(length: number): Promise<void> {
    return this.disk.doTruncate(this.inode, this.generation, length);
  }

  async close(): Promise<void> {}
}

/**
 * The array at a new length. Growth is amortized (files grow by appends, and copying the whole file
 * on every append made long runs quadratic): the result may be a longer view of the same buffer, or
 * a copy into one with room to spare. Bytes newly exposed are zero, as a file extended by a write is.
 */
function resize(b: Uint8Array, length: number): Uint8Array {
  if (length === b.byteLength) return b;
  if (length < b.byteLength) return b.subarray(0, length);
  const room = b.buffer.byteLength - b.byteOffset;
  if (length <= room) {
    const out = new Uint8Array(b.buffer, b.byteOffset, length);
    out.fill(0, b.byteLength); // a shrink may have left old bytes beyond the end
    return out;
  }
  const out = new Uint8Array(new ArrayBuffer(Math.max(length, 2 * b.byteLength)), 0, length);
  out.set(b);
  return out;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
