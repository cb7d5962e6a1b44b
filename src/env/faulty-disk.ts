/**
 * A `Disk` wrapper that counts every operation and fails the ones it is told to: the cheap,
 * in-process equivalent of dm-flakey or LazyFS (reliability.md §3) for tests, benchmarks and the
 * simulator. It wraps any disk (the real one, or the simulator's), so the same fault rules run against
 * both.
 *
 * A rule names an operation, optionally a path pattern, how many matching calls to let through first
 * (`after`) and how many to fail (`times`, default 1). A failed `write` may be torn first: only a
 * prefix of its bytes reaches the inner disk before the error, as a crash mid-write would leave it.
 * A failed `sync` behaves like Linux after fsyncgate: the error is reported once and the inner disk is
 * not synced, so what it should have made durable may be lost.
 */
import type { Disk, DiskFile } from "./env.js";

export type DiskOp = "open" | "read" | "write" | "sync" | "truncate" | "size" | "close" | "remove" | "rename" | "syncDir" | "list" | "mkdirp" | "exists" | "readFile" | "writeFileAtomic";

export interface FaultRule {
  readonly op: DiskOp;
  /** Only calls on paths matching this (substring or regular expression). */
  readonly path?: string | RegExp;
  /** Matching calls to let through before the rule fires. Default 0. */
  readonly after?: number;
  /** Matching calls to fail once it fires. Default 1; Infinity for "from now on". */
  readonly times?: number;
  /** errno-style code of the thrown error. Default "EIO". */
  readonly code?: string;
  /** For `write`: bytes of the write that reach the disk before it fails (a torn write). Default 0. */
  readonly tornBytes?: number;
}

export class InjectedDiskError extends Error {
  override name = "InjectedDiskError";
  constructor(readonly code: string, readonly op: DiskOp, readonly path: string) {
    super(`${code}: injected ${op} failure on ${path}`);
  }
}

interface ActiveRule {
  readonly rule: FaultRule;
  seen: number;
  fired: number;
}

export class FaultyDisk implements Disk {
  /** Calls per operation, failed ones included. */
  readonly counts: Record<DiskOp, number> = {
    open: 0, read: 0, write: 0, sync: 0, truncate: 0, size: 0, close: 0, remove: 0, rename: 0,
    syncDir: 0, list: 0, mkdirp: 0, exists: 0, readFile: 0, writeFileAtomic: 0,
  };
  /** Injected failures so far. */
  failures = 0;
  private rules: ActiveRule[] = [];

  constructor(readonly inner: Disk) {}

  /** Adds a fault rule; returns a function that removes it. */
  inject(rule: FaultRule): () => void {
    const active: ActiveRule = { rule, seen: 0, fired: 0 };
    this.rules.push(active);
    return () => { this.rules = this.rules.filter((r) => r !== active); };
  }

  /** Fails the next fdatasync of a file (optionally one whose path matches). */
  failNextSync(path?: string | RegExp): () => void {
    return this.inject(path === undefined ? { op: "sync" } : { op: "sync", path });
  }

  clearFaults(): void {
    this.rules = [];
  }

  resetCounts(): void {
    for (const k of Object.keys(this.counts) as DiskOp[]) this.counts[k] = 0;
  }

  /** Counts the call and returns the rule that fails it, if any. */
  check(op: DiskOp, path: string): FaultRule | undefined {
    this.counts[op]++;
    for (const r of this.rules) {
      if (r.rule.op !== op || !matches(r.rule.path, path)) continue;
      r.seen++;
      if (r.seen <= (r.rule.after ?? 0)) continue;
      if (r.fired >= (r.rule.times ?? 1)) continue;
      r.fired++;
      this.failures++;
      return r.rule;
    }
    return undefined;
  }

  private guard(op: DiskOp, path: string): void {
    const rule = this.check(op, path);
    if (rule !== undefined) throw new InjectedDiskError(rule.code ?? "EIO", op, path);
  }

  async open(path: string, options: { create: boolean }): Promise<DiskFile> {
    this.guard("open", path);
    return new FaultyFile(this, await this.inner.open(path, options));
  }

  async exists(path: string): Promise<boolean> {
    this.guard("exists", path);
    return this.inner.exists(path);
  }

  async list(dir: string): Promise<string[]> {
    this.guard("list", dir);
    return this.inner.list(dir);
  }

  async mkdirp(dir: string): Promise<void> {
    this.guard("mkdirp", dir);
    return this.inner.mkdirp(dir);
  }

  async remove(path: string): Promise<void> {
    this.guard("remove", path);
    return this.inner.remove(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.guard("rename", from);
    return this.inner.rename(from, to);
  }

  async syncDir(dir: string): Promise<void> {
    this.guard("syncDir", dir);
    return this.inner.syncDir(dir);
  }

  async writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
    this.guard("writeFileAtomic", path);
    return this.inner.writeFileAtomic(path, bytes);
  }

  async readFile(path: string): Promise<Uint8Array> {
    this.guard("readFile", path);
    return this.inner.readFile(path);
  }
}

class FaultyFile implements DiskFile {
  constructor(private readonly disk: FaultyDisk, private readonly inner: DiskFile) {}

  get path(): string {
    return this.inner.path;
  }

  private guard(op: DiskOp): void {
    const rule = this.disk.check(op, this.inner.path);
    if (rule !== undefined) throw new InjectedDiskError(rule.code ?? "EIO", op, this.inner.path);
  }

  async size(): Promise<number> {
    this.guard("size");
    return this.inner.size();
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.guard("read");
    return this.inner.read(offset, length);
  }

  async write(offset: number, bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const rule = this.disk.check("write", this.inner.path);
    if (rule === undefined) return this.inner.write(offset, bytes);
    const torn = rule.tornBytes ?? 0;
    if (torn > 0) {
      const all = bytes instanceof Uint8Array ? bytes : concat(bytes);
      await this.inner.write(offset, all.subarray(0, Math.min(torn, all.byteLength)));
    }
    throw new InjectedDiskError(rule.code ?? "EIO", "write", this.inner.path);
  }

  async sync(): Promise<void> {
    this.guard("sync");
    return this.inner.sync();
  }

  async truncate(length: number): Promise<void> {
    this.guard("truncate");
    return this.inner.truncate(length);
  }

  async close(): Promise<void> {
    this.guard("close");
    return this.inner.close();
  }
}

function matches(pattern: string | RegExp | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === "string" ? path.includes(pattern) : pattern.test(path);
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
