/**
 * The embedded `KvStore`: the default control-plane store when the whole cluster runs on one machine.
 *
 * The state is a map in memory and one JSON file on disk (`<dataDir>/kv.json`), rewritten whole and
 * atomically (`Env.disk.writeFileAtomic`: temp file, fsync, rename, fsync directory) on every change.
 * That is the simplest store that is crash-safe, and it is cheap enough here: the control plane writes
 * when a volume is created or grows, an epoch is bumped, a writer takes over or a node registers —
 * a handful of times per minute, never on the data path. Heartbeats are deliberately not written
 * (`control-plane.ts` keeps liveness in memory).
 *
 * Writes are applied one at a time, in arrival order. A change becomes visible to readers only after
 * the file that contains it is durable, so nobody acts on state that a crash could take back — and
 * `open` fsyncs the file and its directory before serving what it loaded (a kill -9 between a rename
 * and its directory fsync leaves a file that is readable but not yet durable).
 *
 * One process owns a data directory: two processes writing the same file would silently lose each
 * other's updates. (The CLI runs one control plane per directory; etcd is the multi-process answer.)
 */
import * as path from "node:path";
import type { Env } from "../env/env.js";
import { assert, isSafeUint } from "../core/assert.js";
import { BorealisError, withContext } from "../core/errors.js";
import {
  KV_LIMITS, type KvDeleteOptions, type KvEntry, type KvListOptions, type KvPutOptions, type KvStore,
} from "./kv-store.js";

const FILE_NAME = "kv.json";
const FORMAT = "borealis-kv";
const FORMAT_VERSION = 1;
/** Refuse to load a file larger than this: the bounds below keep a healthy one far smaller. */
const MAX_FILE_BYTES = 256 * 1024 * 1024;
/** Total key and value bytes held; past it, puts fail instead of growing the file without bound. */
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
/** Writes waiting for the file; past it, callers get TOO_MANY_IN_FLIGHT (back-pressure). */
const MAX_QUEUED_WRITES = 1024;

interface Stored {
  readonly value: string;
  readonly revision: number;
}

/** The file's shape. Short field names keep a file of many entries small. */
interface FileImage {
  readonly format: typeof FORMAT;
  readonly version: number;
  readonly revision: number;
  readonly entries: readonly { readonly k: string; readonly v: string; readonly r: number }[];
}

export class EmbeddedKv implements KvStore {
  /** The committed state: what the file on disk holds. */
  private readonly entries = new Map<string, Stored>();
  private totalBytes = 0;
  /** Highest revision handed out, including those of writes whose outcome was unknown. */
  private rev = 0;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private closed = false;

  private constructor(private readonly env: Env, readonly filePath: string) {}

  /** Opens (creating when absent) the store in `dataDir`. */
  static async open(env: Env, dataDir: string): Promise<EmbeddedKv> {
    const kv = new EmbeddedKv(env, path.join(dataDir, FILE_NAME));
    try {
      await env.disk.mkdirp(dataDir);
      // A crash between writing a temp file and renaming it leaves the temp file behind; the real
      // file is intact (that is the point of the rename), so the leftovers are garbage.
      for (const name of await env.disk.list(dataDir)) {
        if (name.startsWith(`${FILE_NAME}.tmp`)) await env.disk.remove(path.join(dataDir, name));
      }
      if (await env.disk.exists(kv.filePath)) {
        await kv.load();
        // After a kill -9 the file may be one whose rename was never fsynced (the process died between
        // the rename and the directory fsync): readable now, gone after a power loss. Make what was
        // loaded durable before anyone acts on it — a recovery record served to a writer and then lost
        // would leave a segment that missed that recovery without its annulment.
        const f = await env.disk.open(kv.filePath, { create: false });
        try {
          await f.sync();
        } finally {
          await f.close();
        }
      }
      await env.disk.syncDir(dataDir);
    } catch (e) {
      throw withContext(`open control-plane store ${kv.filePath}`, e);
    }
    env.log.debug("kv-opened", { file: kv.filePath, revision: kv.rev, entries: kv.entries.size });
    return kv;
  }

  async get(key: string): Promise<KvEntry | null> {
    this.checkOpen();
    checkKey(key);
    const e = this.entries.get(key);
    return e === undefined ? null : { key, value: e.value, revision: e.revision };
  }

  async list(prefix: string, options: KvListOptions = {}): Promise<KvEntry[]> {
    this.checkOpen();
    if (typeof prefix !== "string") throw new BorealisError("INVALID_ARGUMENT", "kv list: prefix must be a string");
    const limit = options.limit ?? KV_LIMITS.maxEntries;
    assert(isSafeUint(limit), "kv list: limit must be a non-negative integer");
    const keys = [...this.entries.keys()].filter((k) => k.startsWith(prefix)).sort();
    const out: KvEntry[] = [];
    for (const key of keys.slice(0, limit)) {
      const e = this.entries.get(key)!;
      out.push({ key, value: e.value, revision: e.revision });
    }
    return out;
  }

  async revision(): Promise<number> {
    this.checkOpen();
    return this.rev;
  }

  put(key: string, value: string, options: KvPutOptions = {}): Promise<number> {
    return this.enqueue(async () => {
      checkKey(key);
      if (typeof value !== "string") throw new BorealisError("INVALID_ARGUMENT", "kv put: value must be a string");
      const valueBytes = Buffer.byteLength(value, "utf8");
      if (valueBytes > KV_LIMITS.maxValueBytes) {
        throw new BorealisError("INVALID_ARGUMENT", `kv put ${key}: value of ${valueBytes} bytes exceeds ${KV_LIMITS.maxValueBytes}`);
      }
      const current = this.entries.get(key);
      checkExpectation(key, current, options.expectRevision);
      if (current === undefined && this.entries.size >= KV_LIMITS.maxEntries) {
        throw new BorealisError("INVALID_ARGUMENT", `kv put ${key}: the store already holds ${KV_LIMITS.maxEntries} entries`);
      }
      const delta = entryBytes(key, value) - (current === undefined ? 0 : entryBytes(key, current.value));
      if (this.totalBytes + delta > MAX_TOTAL_BYTES) {
        throw new BorealisError("INVALID_ARGUMENT", `kv put ${key}: the store would exceed ${MAX_TOTAL_BYTES} bytes`);
      }
      const revision = await this.persist({ key, value });
      this.entries.set(key, { value, revision });
      this.totalBytes += delta;
      return revision;
    });
  }

  delete(key: string, options: KvDeleteOptions = {}): Promise<boolean> {
    return this.enqueue(async () => {
      checkKey(key);
      const current = this.entries.get(key);
      if (options.expectRevision !== undefined) checkExpectation(key, current, options.expectRevision);
      if (current === undefined) return false;
      await this.persist({ key, value: null });
      this.entries.delete(key);
      this.totalBytes -= entryBytes(key, current.value);
      return true;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
  }

  // ------------------------------------------------------------------------------------------ private

  private checkOpen(): void {
    if (this.closed) throw new BorealisError("SHUTTING_DOWN", "control-plane store is closed");
  }

  /** Runs `op` after every write queued before it, so writes apply and persist in arrival order. */
  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    try {
      this.checkOpen();
      if (this.queued >= MAX_QUEUED_WRITES) {
        throw new BorealisError("TOO_MANY_IN_FLIGHT", `control-plane store has ${this.queued} writes queued`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    this.queued++;
    const run = this.queue.then(op);
    this.queue = run.then(() => undefined, () => undefined);
    return run.finally(() => { this.queued--; });
  }

  /**
   * Writes the committed state plus one change (`value: null` deletes) and resolves with the change's
   * revision once the file is durable. The revision is consumed even when the write fails, so it is
   * never handed out twice: after a failure the file may hold the change or not (the rename may or may
   * not have happened), which is exactly what COMMIT_OUTCOME_UNKNOWN tells the caller; the next
   * successful write settles it by rewriting the whole state without it.
   */
  private async persist(change: { key: string; value: string | null }): Promise<number> {
    const revision = this.rev + 1;
    this.rev = revision;
    const rows: { k: string; v: string; r: number }[] = [];
    for (const [k, e] of this.entries) {
      if (k !== change.key) rows.push({ k, v: e.value, r: e.revision });
    }
    if (change.value !== null) rows.push({ k: change.key, v: change.value, r: revision });
    rows.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
    const image: FileImage = { format: FORMAT, version: FORMAT_VERSION, revision, entries: rows };
    const bytes = new TextEncoder().encode(JSON.stringify(image));
    try {
      await this.env.disk.writeFileAtomic(this.filePath, bytes);
    } catch (e) {
      this.env.log.error("kv-write-failed", { file: this.filePath, revision, error: e });
      throw new BorealisError(
        "COMMIT_OUTCOME_UNKNOWN",
        `write control-plane store ${this.filePath}: ${e instanceof Error ? e.message : String(e)}`,
        {}, { cause: e },
      );
    }
    return revision;
  }

  private async load(): Promise<void> {
    const file = await this.env.disk.open(this.filePath, { create: false });
    let size: number;
    try {
      size = await file.size();
    } finally {
      await file.close();
    }
    if (size > MAX_FILE_BYTES) throw corrupt(this.filePath, `file is ${size} bytes, more than ${MAX_FILE_BYTES}`);
    const text = new TextDecoder("utf-8", { fatal: true }).decode(await this.env.disk.readFile(this.filePath));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw corrupt(this.filePath, `not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const image = parsed as Partial<FileImage> | null;
    if (image === null || typeof image !== "object" || image.format !== FORMAT) throw corrupt(this.filePath, "not a Borealis control-plane store");
    if (image.version !== FORMAT_VERSION) throw corrupt(this.filePath, `format version ${String(image.version)}, expected ${FORMAT_VERSION}`);
    if (!isSafeUint(image.revision)) throw corrupt(this.filePath, "bad revision");
    if (!Array.isArray(image.entries) || image.entries.length > KV_LIMITS.maxEntries) throw corrupt(this.filePath, "bad entries");
    for (const row of image.entries as unknown[]) {
      const { k, v, r } = (row ?? {}) as { k?: unknown; v?: unknown; r?: unknown };
      if (typeof k !== "string" || typeof v !== "string" || !isSafeUint(r) || r < 1 || r > image.revision) {
        throw corrupt(this.filePath, `bad entry ${JSON.stringify(row)?.slice(0, 100)}`);
      }
      if (this.entries.has(k)) throw corrupt(this.filePath, `duplicate key ${k}`);
      this.entries.set(k, { value: v, revision: r });
      this.totalBytes += entryBytes(k, v);
    }
    this.rev = image.revision;
  }
}

function entryBytes(key: string, value: string): number {
  return Buffer.byteLength(key, "utf8") + Buffer.byteLength(value, "utf8");
}

function checkKey(key: string): void {
  if (typeof key !== "string" || key.length === 0) throw new BorealisError("INVALID_ARGUMENT", "kv key must be a non-empty string");
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > KV_LIMITS.maxKeyBytes) {
    throw new BorealisError("INVALID_ARGUMENT", `kv key of ${bytes} bytes exceeds ${KV_LIMITS.maxKeyBytes}`);
  }
}

function checkExpectation(key: string, current: Stored | undefined, expect: number | "absent" | undefined): void {
  if (expect === undefined) return;
  if (expect === "absent") {
    if (current !== undefined) {
      throw new BorealisError("CONFLICT", `kv ${key}: expected no entry, found revision ${current.revision}`, { revision: current.revision });
    }
    return;
  }
  if (!isSafeUint(expect)) throw new BorealisError("INVALID_ARGUMENT", `kv ${key}: expectRevision must be a non-negative integer or "absent"`);
  if (current === undefined || current.revision !== expect) {
    const found = current === undefined ? "no entry" : `revision ${current.revision}`;
    throw new BorealisError("CONFLICT", `kv ${key}: expected revision ${expect}, found ${found}`, { revision: current?.revision ?? null });
  }
}

function corrupt(file: string, why: string): BorealisError {
  return new BorealisError("CORRUPT_DATA", `control-plane store ${file} is unreadable: ${why}`);
}
