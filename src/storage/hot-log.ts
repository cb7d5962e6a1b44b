/**
 * The hot log: a storage node's durable, append-only, checksummed log of received write batches
 * (Aurora's step 2, ARCHITECTURE D6). One log per node, shared by all its segments, so that one
 * `fdatasync` makes every segment's concurrent batches durable at once (group commit).
 *
 * What this module owns:
 * - the on-disk format (below), written and verified here and nowhere else;
 * - group commit: `append` resolves only after the fdatasync that covers its entry (invariant 2);
 *   entries that arrive while an fsync is in flight go into the next group, one writev + one
 *   fdatasync per group;
 * - fencing: after any write, fsync or file-creation error, every queued and future append rejects
 *   with STORAGE_FENCED and nothing is acknowledged again (invariant 2, fsyncgate: a retried fsync may
 *   "succeed" without the data, so the log never retries);
 * - replay on open, which verifies every entry and every record and cuts a torn tail;
 * - file lifetime: each file counts the records that still need it (references taken by the node for
 *   every record it holds unsorted); a file that is not the active one and has no references is
 *   deleted.
 *
 * Files live in DIR/log/, named `<sequence, 16 digits>.hlog`, and roll at `fileSizeBytes`.
 *
 *     file   := header entry*
 *     header := 128 bytes:
 *                 0  8 bytes  magic "BOREALOG"
 *                 8  u16      format version (1)
 *                10  u16      node id length in bytes
 *                12  u32      crc32c(node id, UTF-8)
 *                16  u32,u32  file sequence (high, low 32 bits)
 *                24  u32      header size (128)
 *                28  96 bytes node id prefix, zero-padded (for people reading a hex dump)
 *               124  u32      crc32c(bytes 0..124)
 *     entry  := u32 length, u32 crc32c(body), body            (little-endian, as record.ts)
 *     body   := u8 kind (1 = write batch), string volumeId, varint pgId, varint writerVdl,
 *               varint recordCount, record*                     (record.ts encoding, exact bytes)
 *
 * Every record keeps the checksum it arrived with, seeded with its identity (volume, PG): a record
 * that ends up under another segment's entry fails it (invariant 9), even when the entry's own
 * checksum is intact.
 *
 * All I/O goes through `Disk`, so the simulator and fault-injecting disks can stand in for the OS.
 */
import * as path from "node:path";
import { assert } from "../core/assert.js";
import { crc32c } from "../core/checksum.js";
import { BorealisError, withContext } from "../core/errors.js";
import { Lsn, PgId, VolumeId, segmentKeyString, type SegmentKey } from "../core/types.js";
import type { Disk, DiskFile, Logger } from "../env/env.js";
import { ByteReader, ByteWriter } from "../wire/bytes.js";
import { identitySeed, readRecord, writeRecord, type EncodedRecord } from "../wire/record.js";

export const HOT_LOG_MAGIC = "BOREALOG";
export const HOT_LOG_FORMAT_VERSION = 1;
export const HOT_LOG_HEADER_BYTES = 128;
/** Entry prefix: u32 length + u32 crc. */
export const ENTRY_PREFIX_BYTES = 8;
/** No entry body is ever larger; a length above it is corruption, not an allocation request. */
export const MAX_ENTRY_BYTES = 64 * 1024 * 1024;
/** kind + empty volume id + pg + vdl + count: anything shorter cannot be an entry (all-zero regions). */
const MIN_ENTRY_BODY_BYTES = 5;
const ENTRY_KIND_WRITE_BATCH = 1;
const FILE_SUFFIX = ".hlog";
const NODE_ID_PREFIX_BYTES = 96;

export interface HotLogOptions {
  /** The log directory (DIR/log). */
  readonly dir: string;
  readonly nodeId: string;
  /** Roll to a new file once the active one reaches this size. Default 64 MiB. */
  readonly fileSizeBytes?: number;
  /** Bytes queued for the next group(s) before `append` refuses with BACKPRESSURE. Default 32 MiB. */
  readonly maxPendingBytes?: number;
  /** Bytes written by one writev + fdatasync at most. Default 8 MiB. */
  readonly maxGroupBytes?: number;
}

/** One write batch as the log stores it. */
export interface HotLogBatch {
  readonly key: SegmentKey;
  readonly writerVdl: Lsn;
  readonly records: readonly EncodedRecord[];
}

export interface ReplayedBatch extends HotLogBatch {
  /** The file the batch was read from: the node takes a reference on it for every record it keeps. */
  readonly fileSeq: number;
}

export interface ReplayReport {
  readonly files: number;
  readonly entries: number;
  readonly records: number;
  readonly bytes: number;
  /** Bytes cut from the end of the last file (a torn tail). */
  readonly truncatedBytes: number;
  /** Entries that failed a checksum or did not parse and were skipped. */
  readonly corruptEntries: number;
}

export interface HotLogStats {
  readonly appends: number;
  /** One per group: a writev and an fdatasync. */
  readonly groups: number;
  readonly bytesWritten: number;
  readonly files: number;
  readonly activeFileSeq: number;
  readonly pendingBytes: number;
  readonly fenced: boolean;
}

interface LogFile {
  readonly seq: number;
  readonly path: string;
  /** Records held by segments that were read from or appended to this file, plus pins of entries
   *  whose append has resolved but whose records have not yet been taken. */
  refs: number;
  /** Highest LSN per segment in this file: for status and for reasoning about what a file holds. */
  readonly maxLsn: Map<string, Lsn>;
  deleting: boolean;
}

interface Queued {
  readonly bytes: Uint8Array;
  readonly keyString: string;
  readonly maxLsn: Lsn;
  readonly resolve: (fileSeq: number) => void;
  readonly reject: (e: unknown) => void;
}

export class HotLog {
  private readonly fileSizeBytes: number;
  private readonly maxPendingBytes: number;
  private readonly maxGroupBytes: number;
  private readonly files = new Map<number, LogFile>();
  private active!: { seq: number; file: DiskFile; size: number };
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private flushing: Promise<void> | undefined;
  private fenceError: Error | undefined;
  private closing = false;
  /** No file is deleted before replay has finished and the new active file exists. */
  private opened = false;
  private deletions: Promise<void> = Promise.resolve();
  private appends = 0;
  private groups = 0;
  private bytesWritten = 0;

  private constructor(
    private readonly disk: Disk,
    private readonly log: Logger,
    private readonly options: HotLogOptions,
  ) {
    this.fileSizeBytes = options.fileSizeBytes ?? 64 * 1024 * 1024;
    this.maxPendingBytes = options.maxPendingBytes ?? 32 * 1024 * 1024;
    this.maxGroupBytes = Math.min(options.maxGroupBytes ?? 8 * 1024 * 1024, this.maxPendingBytes);
    assert(this.fileSizeBytes > HOT_LOG_HEADER_BYTES, "hot log file size must exceed its header");
    assert(this.maxPendingBytes > 0 && this.maxGroupBytes > 0, "hot log bounds must be positive");
    assert(new TextEncoder().encode(options.nodeId).byteLength <= 0xffff, "node id too long for the hot log header");
  }

  /**
   * Opens the log directory, replays every file in order through `onBatch` (records are views into a
   * read buffer: copy what you keep), cuts a torn tail, makes what it replayed durable, starts a new
   * active file and deletes the files nothing needs. A batch is only delivered when its entry and
   * every record in it verify. `onBatch` returns how many of the batch's records the caller keeps:
   * each is a reference on the batch's file; it may drop references it took earlier (`dropRefs`).
   */
  static async open(
    disk: Disk,
    log: Logger,
    options: HotLogOptions,
    onBatch: (batch: ReplayedBatch, hotLog: HotLog) => number,
  ): Promise<{ hotLog: HotLog; report: ReplayReport }> {
    const hotLog = new HotLog(disk, log, options);
    const report = await hotLog.replay((batch) => onBatch(batch, hotLog));
    await hotLog.startNewFile(hotLog.nextSeq());
    hotLog.opened = true;
    for (const f of [...hotLog.files.values()]) hotLog.maybeDelete(f);
    return { hotLog, report };
  }

  get fenced(): boolean {
    return this.fenceError !== undefined;
  }

  stats(): HotLogStats {
    return {
      appends: this.appends, groups: this.groups, bytesWritten: this.bytesWritten, files: this.files.size,
      activeFileSeq: this.active.seq, pendingBytes: this.queuedBytes, fenced: this.fenced,
    };
  }

  /** Sequence numbers of the files on disk with their reference counts (for status and tests). */
  fileRefs(): { seq: number; refs: number; maxLsn: Record<string, number> }[] {
    return [...this.files.values()].sort((a, b) => a.seq - b.seq)
      .map((f) => ({ seq: f.seq, refs: f.refs, maxLsn: Object.fromEntries(f.maxLsn) }));
  }

  /**
   * Appends one batch; resolves with the file it went to once an fdatasync covers it. The file is
   * pinned by one reference on the caller's behalf: take references for the records you keep
   * (`addRefs`), then drop the pin (`dropRefs(fileSeq, 1)`).
   */
  append(batch: HotLogBatch): Promise<number> {
    if (this.fenceError !== undefined) return Promise.reject(this.fencedError());
    if (this.closing) return Promise.reject(new BorealisError("SHUTTING_DOWN", "hot log is closing"));
    const bytes = encodeEntry(batch);
    if (bytes.byteLength - ENTRY_PREFIX_BYTES > MAX_ENTRY_BYTES || bytes.byteLength > this.maxPendingBytes) {
      return Promise.reject(new BorealisError("INVALID_ARGUMENT", `write batch of ${bytes.byteLength} bytes exceeds the hot log's entry limit`));
    }
    // Back-pressure as a value: the queue never grows past its bound; the writer retries or the
    // quorum absorbs a slow segment.
    if (this.queuedBytes + bytes.byteLength > this.maxPendingBytes) {
      return Promise.reject(new BorealisError("BACKPRESSURE", `hot log queue full (${this.queuedBytes} bytes waiting for fsync)`));
    }
    let maxLsn = Lsn(0);
    for (const r of batch.records) if (r.lsn > maxLsn) maxLsn = r.lsn;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ bytes, keyString: segmentKeyString(batch.key), maxLsn, resolve, reject });
      this.queuedBytes += bytes.byteLength;
      this.appends++;
      // A microtask, not a write now: appends issued in the same turn join one group.
      if (this.flushing === undefined) this.flushing = Promise.resolve().then(() => this.flushLoop());
    });
  }

  addRefs(fileSeq: number, n: number): void {
    if (n === 0) return;
    const f = this.files.get(fileSeq);
    assert(f !== undefined && !f.deleting, `reference to hot log file ${fileSeq}, which is gone`);
    f.refs += n;
  }

  dropRefs(fileSeq: number, n: number): void {
    if (n === 0) return;
    const f = this.files.get(fileSeq);
    assert(f !== undefined && f.refs >= n, `hot log file ${fileSeq} has ${f?.refs} references, dropping ${n}`);
    f.refs -= n;
    this.maybeDelete(f);
  }

  /** Waits for every queued append to be written (or refused), then closes the active file. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.flushing !== undefined) await this.flushing;
    await this.deletions;
    try {
      await this.active.file.close();
    } catch (e) {
      this.log.warn("hot-log-close-failed", { error: e });
    }
  }

  // ------------------------------------------------------------------------------------ group commit

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.fenceError === undefined) {
        if (this.active.size >= this.fileSizeBytes) await this.roll();
        const group = this.takeGroup();
        const file = this.files.get(this.active.seq)!;
        try {
          await this.active.file.write(this.active.size, group.map((q) => q.bytes));
          await this.active.file.sync();
        } catch (e) {
          this.fence(e, group);
          break;
        }
        const groupBytes = group.reduce((n, q) => n + q.bytes.byteLength, 0);
        this.active.size += groupBytes;
        this.bytesWritten += groupBytes;
        this.queuedBytes -= groupBytes;
        this.groups++;
        for (const q of group) {
          const prev = file.maxLsn.get(q.keyString) ?? 0;
          if (q.maxLsn > prev) file.maxLsn.set(q.keyString, q.maxLsn);
          file.refs++; // the pin the caller drops once it has taken its references
          q.resolve(file.seq);
        }
      }
    } catch (e) {
      // Roll failed (a new file could not be created and made durable): same rule as a failed fsync.
      this.fence(e, []);
    } finally {
      this.flushing = undefined;
      if (this.queue.length > 0 && this.fenceError === undefined) {
        this.flushing = Promise.resolve().then(() => this.flushLoop());
      }
    }
  }

  private takeGroup(): Queued[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length) {
      const size = this.queue[n]!.bytes.byteLength;
      if (n > 0 && bytes + size > this.maxGroupBytes) break;
      bytes += size;
      n++;
    }
    assert(n > 0, "a group takes at least one entry");
    return this.queue.splice(0, n);
  }

  private fence(e: unknown, group: readonly Queued[]): void {
    if (this.fenceError === undefined) {
      this.fenceError = e instanceof Error ? e : new Error(String(e));
      this.log.error("hot-log-fenced", { error: this.fenceError, file: this.active.seq, queued: this.queue.length + group.length });
    }
    // Invariant 2: nothing that was in flight or queued is acknowledged, now or later.
    const err = this.fencedError();
    for (const q of group) q.reject(err);
    for (const q of this.queue) q.reject(err);
    this.queue = [];
    this.queuedBytes = 0;
  }

  private fencedError(): BorealisError {
    return new BorealisError("STORAGE_FENCED", `hot log fenced after a disk error: ${this.fenceError?.message ?? "unknown"}`, {}, { cause: this.fenceError });
  }

  // ------------------------------------------------------------------------------------------- files

  private filePath(seq: number): string {
    return path.join(this.options.dir, `${String(seq).padStart(16, "0")}${FILE_SUFFIX}`);
  }

  private nextSeq(): number {
    let max = 0;
    for (const seq of this.files.keys()) max = Math.max(max, seq);
    return max + 1;
  }

  private async roll(): Promise<void> {
    const old = this.active;
    await this.startNewFile(old.seq + 1);
    try {
      await old.file.close();
    } catch (e) {
      this.log.warn("hot-log-close-failed", { file: old.seq, error: e });
    }
    const f = this.files.get(old.seq);
    if (f !== undefined) this.maybeDelete(f);
  }

  /** Creates a file, writes and fsyncs its header, fsyncs the directory (ALICE: both), activates it. */
  private async startNewFile(seq: number): Promise<void> {
    const p = this.filePath(seq);
    const file = await this.disk.open(p, { create: true });
    await file.truncate(0);
    await file.write(0, encodeHeader(this.options.nodeId, seq));
    await file.sync();
    await this.disk.syncDir(this.options.dir);
    this.files.set(seq, { seq, path: p, refs: 0, maxLsn: new Map(), deleting: false });
    this.active = { seq, file, size: HOT_LOG_HEADER_BYTES };
    this.log.debug("hot-log-file-started", { file: seq });
  }

  private maybeDelete(f: LogFile): void {
    // Not while closing either: what is left is cleaned up at the next open.
    if (!this.opened || this.closing || f.refs > 0 || f.deleting || f.seq === this.active.seq) return;
    f.deleting = true;
    // Deletions run one at a time; a failed one only costs disk space, never correctness.
    this.deletions = this.deletions.then(async () => {
      try {
        await this.disk.remove(f.path);
        await this.disk.syncDir(this.options.dir);
        this.files.delete(f.seq);
        this.log.debug("hot-log-file-released", { file: f.seq });
      } catch (e) {
        this.log.warn("hot-log-release-failed", { file: f.seq, error: e });
      }
    });
  }

  // ------------------------------------------------------------------------------------------ replay

  private async replay(onBatch: (batch: ReplayedBatch) => number): Promise<ReplayReport> {
    const dir = this.options.dir;
    await this.disk.mkdirp(dir);
    const names = (await this.disk.list(dir)).filter((n) => /^\d{16}\.hlog$/.test(n));
    const seqs = names.map((n) => Number(n.slice(0, 16))).sort((a, b) => a - b);
    let entries = 0, records = 0, bytes = 0, truncatedBytes = 0, corruptEntries = 0;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const isLast = i === seqs.length - 1;
      const p = this.filePath(seq);
      const info: LogFile = { seq, path: p, refs: 0, maxLsn: new Map(), deleting: false };
      this.files.set(seq, info);
      let file: DiskFile | undefined;
      try {
        file = await this.disk.open(p, { create: false });
        const size = await file.size();
        const data = await file.read(0, size);
        if (data.byteLength !== size) throw new Error(`short read: ${data.byteLength} of ${size} bytes`);
        const headerOk = this.checkHeader(data, seq, isLast);
        if (headerOk === "torn") {
          // A last file whose header never became durable held no acknowledged entry (entries are
          // only written after the header and the directory are fsynced).
          this.log.warn("hot-log-torn-header", { file: seq, bytes: size });
          truncatedBytes += size;
          await file.close();
          file = undefined;
          await this.disk.remove(p);
          await this.disk.syncDir(dir);
          this.files.delete(seq);
          continue;
        }
        let off = HOT_LOG_HEADER_BYTES;
        while (off < data.byteLength) {
          const parsed = parseEntry(data, off);
          if (parsed.kind === "ok") {
            entries++;
            records += parsed.batch.records.length;
            bytes += parsed.next - off;
            let maxLsn = Lsn(0);
            for (const r of parsed.batch.records) if (r.lsn > maxLsn) maxLsn = r.lsn;
            const ks = segmentKeyString(parsed.batch.key);
            if (maxLsn > (info.maxLsn.get(ks) ?? 0)) info.maxLsn.set(ks, maxLsn);
            const kept = onBatch({ ...parsed.batch, fileSeq: seq });
            assert(kept >= 0 && kept <= parsed.batch.records.length, "replay keeps at most the batch's records");
            info.refs += kept;
            off = parsed.next;
            continue;
          }
          if (parsed.kind === "invalid") {
            // The entry's checksum held but its content did not (a record under the wrong identity,
            // an unknown kind): its length is trustworthy, so only this entry is lost.
            corruptEntries++;
            this.log.error("hot-log-invalid-entry", { file: seq, offset: off, reason: parsed.reason });
            off = parsed.next;
            continue;
          }
          const resume = findNextEntry(data, off + 1);
          if (resume < 0) {
            if (isLast) {
              // A torn tail: the group being written when the node stopped. It was never
              // acknowledged (its fsync did not return); cut it so new appends never follow garbage.
              const cut = data.byteLength - off;
              truncatedBytes += cut;
              this.log.warn("hot-log-torn-tail", { file: seq, offset: off, bytes: cut });
              await file.truncate(off);
            } else {
              corruptEntries++;
              this.log.error("hot-log-corrupt-tail", { file: seq, offset: off, bytes: data.byteLength - off });
            }
            break;
          }
          corruptEntries++;
          this.log.error("hot-log-corrupt-entry", { file: seq, offset: off, skippedBytes: resume - off });
          off = resume;
        }
        // What a restarted process reads may still sit only in the page cache (the previous process
        // wrote it, its fsync never returned). Make it durable before anything reports it held.
        await file.sync();
      } catch (e) {
        throw withContext(`replay hot log file ${p}`, e);
      } finally {
        await file?.close();
      }
    }
    return { files: seqs.length, entries, records, bytes, truncatedBytes, corruptEntries };
  }

  /** "ok", "torn" (last file, header incomplete) or throws for a header that belongs elsewhere. */
  private checkHeader(data: Uint8Array, seq: number, isLast: boolean): "ok" | "torn" | "corrupt" {
    const result = verifyHeader(data, this.options.nodeId, seq);
    if (result === "ok") return "ok";
    if (result === "wrong-node") {
      throw new BorealisError("CORRUPT_DATA", `hot log file ${seq} belongs to another node (not ${this.options.nodeId}); refusing to open`);
    }
    if (isLast && data.byteLength <= HOT_LOG_HEADER_BYTES) return "torn";
    // A damaged header in a file with entries: the entries carry their own checksums, so read them
    // anyway rather than lose the file.
    this.log.error("hot-log-corrupt-header", { file: seq, reason: result });
    return "corrupt";
  }
}

// ------------------------------------------------------------------------------------------- format

export function encodeHeader(nodeId: string, seq: number): Uint8Array {
  const out = new Uint8Array(HOT_LOG_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(HOT_LOG_MAGIC), 0);
  const id = new TextEncoder().encode(nodeId);
  view.setUint16(8, HOT_LOG_FORMAT_VERSION, true);
  view.setUint16(10, id.byteLength, true);
  view.setUint32(12, crc32c(id), true);
  view.setUint32(16, Math.floor(seq / 2 ** 32), true);
  view.setUint32(20, seq >>> 0, true);
  view.setUint32(24, HOT_LOG_HEADER_BYTES, true);
  out.set(id.subarray(0, NODE_ID_PREFIX_BYTES), 28);
  view.setUint32(124, crc32c(out.subarray(0, 124)), true);
  return out;
}

type HeaderCheck = "ok" | "short" | "checksum" | "magic" | "version" | "sequence" | "wrong-node";

export function verifyHeader(data: Uint8Array, nodeId: string, seq: number): HeaderCheck {
  if (data.byteLength < HOT_LOG_HEADER_BYTES) return "short";
  const view = new DataView(data.buffer, data.byteOffset, HOT_LOG_HEADER_BYTES);
  if (view.getUint32(124, true) !== crc32c(data.subarray(0, 124))) return "checksum";
  if (new TextDecoder().decode(data.subarray(0, 8)) !== HOT_LOG_MAGIC) return "magic";
  if (view.getUint16(8, true) !== HOT_LOG_FORMAT_VERSION) return "version";
  const fileSeq = view.getUint32(16, true) * 2 ** 32 + view.getUint32(20, true);
  if (fileSeq !== seq) return "sequence";
  const id = new TextEncoder().encode(nodeId);
  if (view.getUint16(10, true) !== id.byteLength || view.getUint32(12, true) !== crc32c(id)) return "wrong-node";
  return "ok";
}

/** The entry for one batch, prefix included, in one buffer (one iovec per entry in the group's writev). */
export function encodeEntry(batch: HotLogBatch): Uint8Array {
  let recordBytes = 0;
  for (const r of batch.records) recordBytes += r.bytes.byteLength > 0 ? r.bytes.byteLength : 32 + r.payload.byteLength;
  const w = new ByteWriter(ENTRY_PREFIX_BYTES + 32 + batch.key.volumeId.length * 3 + recordBytes);
  w.reserve(ENTRY_PREFIX_BYTES);
  w.u8(ENTRY_KIND_WRITE_BATCH).string(batch.key.volumeId).varint(batch.key.pgId).varint(batch.writerVdl).varint(batch.records.length);
  let seed: number | undefined;
  for (const r of batch.records) {
    if (r.bytes.byteLength > 0) w.bytes(r.bytes);
    else writeRecord(w, r, (seed ??= identitySeed(batch.key)));
  }
  const all = w.finish();
  const body = all.subarray(ENTRY_PREFIX_BYTES);
  w.patchU32(0, body.byteLength);
  w.patchU32(4, crc32c(body));
  return all;
}

type ParsedEntry =
  | { readonly kind: "ok"; readonly next: number; readonly batch: HotLogBatch }
  | { readonly kind: "invalid"; readonly next: number; readonly reason: string }
  | { readonly kind: "bad" };

/** Reads the entry at `off`: "bad" when its framing or checksum fails (the length cannot be trusted). */
export function parseEntry(data: Uint8Array, off: number): ParsedEntry {
  if (off + ENTRY_PREFIX_BYTES > data.byteLength) return { kind: "bad" };
  const view = new DataView(data.buffer, data.byteOffset + off, ENTRY_PREFIX_BYTES);
  const length = view.getUint32(0, true);
  if (length < MIN_ENTRY_BODY_BYTES || length > MAX_ENTRY_BYTES) return { kind: "bad" };
  const start = off + ENTRY_PREFIX_BYTES;
  const next = start + length;
  if (next > data.byteLength) return { kind: "bad" };
  const body = data.subarray(start, next);
  if (crc32c(body) !== view.getUint32(4, true)) return { kind: "bad" };
  try {
    const r = new ByteReader(body);
    const kind = r.u8("entry kind");
    if (kind !== ENTRY_KIND_WRITE_BATCH) return { kind: "invalid", next, reason: `unknown entry kind ${kind}` };
    const key = { volumeId: VolumeId(r.string("volume id")), pgId: PgId(r.varint("pg id")) };
    const writerVdl = Lsn(r.varint("writer vdl"));
    const count = r.varint("record count");
    if (count > r.remaining / 12) return { kind: "invalid", next, reason: `record count ${count} exceeds the entry` };
    const seed = identitySeed(key);
    const records: EncodedRecord[] = [];
    for (let i = 0; i < count; i++) records.push(readRecord(r, body, seed));
    r.end_("hot log entry");
    return { kind: "ok", next, batch: { key, writerVdl, records } };
  } catch (e) {
    return { kind: "invalid", next, reason: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * The offset of the next entry that verifies completely, at or after `from`, or -1. Used after a
 * damaged entry whose length cannot be trusted: if a valid entry follows, the damage is in the middle
 * and only the damaged bytes are lost; if none does, it is the tail.
 */
export function findNextEntry(data: Uint8Array, from: number): number {
  for (let p = from; p + ENTRY_PREFIX_BYTES + MIN_ENTRY_BODY_BYTES <= data.byteLength; p++) {
    if (parseEntry(data, p).kind === "ok") return p;
  }
  return -1;
}
