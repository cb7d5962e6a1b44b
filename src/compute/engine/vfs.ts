/**
 * The Borealis VFS: the seam between SQLite and the volume, inside each worker (SQLite's own `os_*`
 * layer, as pager.c sees it). One instance per worker; every SQLite connection of that worker goes
 * through it.
 *
 * Main database file ("borealis.db"): an array of pages that exists only as versions.
 * - Reads: the page version visible at the connection's read point, from the shared buffer pool, or
 *   on a miss from the main thread through the page bridge (one blocking hop).
 * - The read point is taken at xLock(SHARED) — the start of every SQLite read transaction — and kept
 *   until xUnlock(NONE): a reader's is the VDL (invariant 7: readers never see above it; asserted on
 *   every page they read), the writer's is its own latest commit. A transaction therefore sees one
 *   snapshot throughout.
 * - Writes: only between xLock(RESERVED) and the commit, into a per-connection overlay. RESERVED is
 *   granted to one connection at a time, only in the writer worker, only while the engine holds its
 *   write lock for this connection, and only on the latest snapshot — a write on a stale snapshot gets
 *   SQLITE_BUSY, WAL's BUSY_SNAPSHOT semantics (spike §2).
 * - Commit: the VFS advertises SQLITE_IOCAP_BATCH_ATOMIC, so SQLite brackets each commit's dirty pages
 *   with BEGIN/COMMIT_ATOMIC_WRITE and writes no journal; at COMMIT_ATOMIC_WRITE the overlay is the
 *   exact dirty set and goes to the RedoWriter. Commits SQLite cannot do batch-atomically (the first
 *   one on an empty volume, a transaction that spilled its cache) journal to an in-memory file and are
 *   captured at SQLITE_FCNTL_SYNC, after the last page write and before the journal is finalized. A
 *   refused commit returns SQLITE_BUSY (never an IOERR at COMMIT_ATOMIC_WRITE: SQLite would retry
 *   through a journal), or SQLITE_IOERR_FSYNC at FCNTL_SYNC (SQLite rolls back from its journal).
 * - Size: xFileSize is the page count in page 1's header at the read point (SQLite keeps it valid),
 *   or the overlay's during a write transaction.
 * Journals and temp files live in memory, per worker.
 *
 * Refused pragmas, with a clear error: locking_mode=EXCLUSIVE (other connections would keep stale
 * caches), journal_mode=WAL (no shared memory here, and MVCC is ours) or OFF (no rollback), synchronous
 * =OFF (SQLite would skip both commit capture points), and a page_size other than the volume's.
 *
 * Dispatch: wa-sqlite's bridge decodes the method name of every VFS call with UTF8ToString (the spike
 * measured that at ~14% of a point select). `register()` replaces the registered receiver with a
 * function — the bridge then calls it with the name pointer untouched — that caches the bound method
 * per name pointer. No patch to node_modules.
 */
import { assert, AssertionError } from "../../core/assert.js";
import type { BufferPool } from "./buffer-pool.js";
import { PageBridgeError, type PageBridgeClient } from "./page-bridge.js";
import type { RedoWriter, Veto } from "./redo-writer.js";
import type { SharedControl } from "./shared-control.js";
import {
  allocString, type SqliteModule,
  SQLITE_BUSY, SQLITE_CANTOPEN, SQLITE_ERROR, SQLITE_FCNTL_BEGIN_ATOMIC_WRITE, SQLITE_FCNTL_COMMIT_ATOMIC_WRITE,
  SQLITE_FCNTL_PRAGMA, SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE, SQLITE_FCNTL_SYNC, SQLITE_IOCAP_BATCH_ATOMIC,
  SQLITE_IOCAP_POWERSAFE_OVERWRITE, SQLITE_IOCAP_SAFE_APPEND, SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN,
  SQLITE_IOERR_FSYNC, SQLITE_IOERR_READ, SQLITE_IOERR_SHORT_READ, SQLITE_IOERR_TRUNCATE, SQLITE_IOERR_WRITE,
  SQLITE_LOCK_NONE, SQLITE_LOCK_RESERVED, SQLITE_LOCK_SHARED, SQLITE_NOTFOUND, SQLITE_OK, SQLITE_OPEN_CREATE,
  SQLITE_OPEN_DELETEONCLOSE, SQLITE_OPEN_MAIN_DB, SQLITE_OPEN_WAL, SQLITE_READONLY,
} from "./sqlite-abi.js";

export type VfsRole = "writer" | "reader";

/** What the worker and the VFS share about one SQLite connection. */
export interface ConnectionBinding {
  readonly connId: number;
  /** This connection's slot in the shared read point table. */
  readonly readSlot: number;
  /** Set by the worker while the engine's write lock covers this connection's statement. */
  allowWrite: boolean;
  /** Read point of the current (or last) read transaction; -1 before the first. */
  lastReadLsn: number;
  /** Schema cookie (page 1, offset 40) at that read point: invalidates per-connection metadata. */
  schemaCookie: number;
}

export interface VfsStats {
  reads: number;
  poolHits: number;
  bridgeReads: number;
  commits: number;
  syncCommits: number;
  vetoes: number;
}

interface MemFile {
  readonly name: string;
  data: Uint8Array;
  size: number;
}

interface MemHandle {
  readonly kind: "mem";
  readonly file: MemFile;
  readonly flags: number;
}

interface MainHandle {
  readonly kind: "main";
  readonly binding: ConnectionBinding;
  lock: number;
  readLsn: number;
  /** Private copy of page 1 at `page1ReadLsn` (size and change counter are read every transaction). */
  readonly page1: Uint8Array;
  page1ReadLsn: number;
  nPagesAtRead: number;
  overlay: Map<number, Uint8Array> | null;
  overlayNPages: number;
  txBaseLsn: number;
}

type Handle = MemHandle | MainHandle;

export interface BorealisVfsOptions {
  readonly role: VfsRole;
  readonly module: SqliteModule;
  readonly pool: BufferPool;
  readonly control: SharedControl;
  readonly bridge: PageBridgeClient;
  readonly pageSize: number;
  readonly dbName: string;
  /** The writer worker's commit pipeline; null in readers. */
  readonly writer: RedoWriter | null;
  readonly warn: (event: string, fields: Record<string, unknown>) => void;
}

const REFUSED = "refused by Borealis";

export class BorealisVfs {
  readonly name = "borealis";
  readonly mxPathname = 512;
  readonly stats: VfsStats = { reads: 0, poolHits: 0, bridgeReads: 0, commits: 0, syncCommits: 0, vetoes: 0 };
  /** Why the last lock or commit was refused; the worker reads it to explain an SQLITE_BUSY. */
  lastVeto: Veto | { rc: number; reason: "STALE_SNAPSHOT" | "NO_WRITE_LOCK" | "WRITER_BUSY"; message: string } | null = null;

  private readonly m: SqliteModule;
  private readonly role: VfsRole;
  private readonly pool: BufferPool;
  private readonly control: SharedControl;
  private readonly bridge: PageBridgeClient;
  private readonly writer: RedoWriter | null;
  private readonly pageSize: number;
  private readonly handles = new Map<number, Handle>();
  private readonly memFiles = new Map<string, MemFile>();
  private pendingBinding: ConnectionBinding | null = null;
  /** The one main-db handle holding RESERVED or more (writer worker only). */
  private writerHandle: MainHandle | null = null;
  private tempCounter = 0;

  constructor(private readonly o: BorealisVfsOptions) {
    this.m = o.module;
    this.role = o.role;
    this.pool = o.pool;
    this.control = o.control;
    this.bridge = o.bridge;
    this.writer = o.writer;
    this.pageSize = o.pageSize;
    assert((o.role === "writer") === (o.writer !== null), "only the writer worker has a commit pipeline");
  }

  /** Registers with SQLite and installs the name-caching dispatcher (see header). */
  register(): void {
    const m = this.m;
    assert(m.vfs_register(this, false) === SQLITE_OK, "vfs_register succeeds");
    const zName = allocString(m, this.name);
    const key = m._sqlite3_vfs_find(zName);
    m._sqlite3_free(zName);
    assert(key !== 0 && m.getCallback(key) === this, "wa-sqlite keys a VFS's callbacks by its sqlite3_vfs pointer");
    const methods = new Map<number, (a: number, b: number, c: number, d: number, e: number) => number>();
    const self = this as unknown as Record<string, (a: number, b: number, c: number, d: number, e: number) => number>;
    m.setCallback(key, (pName: number, a: number, b: number, c: number, d: number, e: number): number => {
      let f = methods.get(pName);
      if (f === undefined) {
        const method = self[m.UTF8ToString(pName)];
        assert(typeof method === "function", `VFS method ${m.UTF8ToString(pName)} exists`);
        f = method.bind(this);
        methods.set(pName, f);
      }
      return f(a, b, c, d, e);
    });
  }

  /** Called by the worker right before sqlite3_open_v2: the main-db xOpen it triggers is this connection's. */
  bindNextOpen(binding: ConnectionBinding): void {
    this.pendingBinding = binding;
  }

  hasAsyncMethod(): boolean {
    return false;
  }

  // --------------------------------------------------------------------------------- files

  xOpen(_pVfs: number, zName: number, pFile: number, flags: number, pOutFlags: number): number {
    const m = this.m;
    const name = zName !== 0 ? m.UTF8ToString(zName) : `temp-${++this.tempCounter}`;
    if ((flags & SQLITE_OPEN_MAIN_DB) !== 0) {
      const binding = this.pendingBinding;
      if (name !== this.o.dbName || binding === null) return SQLITE_CANTOPEN; // no ATTACH of other files
      this.pendingBinding = null;
      this.handles.set(pFile, {
        kind: "main", binding, lock: SQLITE_LOCK_NONE, readLsn: -1,
        page1: new Uint8Array(this.pageSize), page1ReadLsn: -1, nPagesAtRead: 0,
        overlay: null, overlayNPages: 0, txBaseLsn: -1,
      });
    } else {
      if ((flags & SQLITE_OPEN_WAL) !== 0) return SQLITE_CANTOPEN;
      let file = this.memFiles.get(name);
      if (file === undefined) {
        if ((flags & SQLITE_OPEN_CREATE) === 0) return SQLITE_CANTOPEN;
        file = { name, data: new Uint8Array(0), size: 0 };
        this.memFiles.set(name, file);
      }
      this.handles.set(pFile, { kind: "mem", file, flags });
    }
    if (pOutFlags !== 0) m.HEAP32[pOutFlags >> 2] = flags;
    return SQLITE_OK;
  }

  xClose(pFile: number): number {
    const h = this.handles.get(pFile);
    this.handles.delete(pFile);
    if (h === undefined) return SQLITE_OK;
    if (h.kind === "mem") {
      if ((h.flags & SQLITE_OPEN_DELETEONCLOSE) !== 0) this.memFiles.delete(h.file.name);
    } else {
      if (this.writerHandle === h) this.writerHandle = null;
      this.control.clearReadPoint(h.binding.readSlot);
    }
    return SQLITE_OK;
  }

  xDelete(_pVfs: number, zName: number, _syncDir: number): number {
    this.memFiles.delete(this.m.UTF8ToString(zName));
    return SQLITE_OK;
  }

  xAccess(_pVfs: number, zName: number, _flags: number, pResOut: number): number {
    // SQLite probes for a hot journal at the start of every read transaction: keep this cheap.
    let exists = 0;
    if (this.memFiles.size > 0) exists = (this.memFiles.get(this.m.UTF8ToString(zName))?.size ?? 0) > 0 ? 1 : 0;
    this.m.HEAP32[pResOut >> 2] = exists;
    return SQLITE_OK;
  }

  xFullPathname(_pVfs: number, zName: number, nOut: number, zOut: number): number {
    const name = this.m.UTF8ToString(zName);
    if (this.m.lengthBytesUTF8(name) + 1 > nOut) return SQLITE_CANTOPEN;
    this.m.stringToUTF8(name, zOut, nOut);
    return SQLITE_OK;
  }

  xSectorSize(_pFile: number): number {
    return 4096;
  }

  xDeviceCharacteristics(pFile: number): number {
    const base = SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_UNDELETABLE_WHEN_OPEN | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
    return this.handles.get(pFile)?.kind === "main" ? base | SQLITE_IOCAP_BATCH_ATOMIC : base;
  }

  xSync(_pFile: number, _flags: number): number {
    return SQLITE_OK;
  }

  xFileSize(pFile: number, pSize: number): number {
    const h = this.handles.get(pFile)!;
    let size: number;
    if (h.kind === "mem") size = h.file.size;
    else {
      const n = this.nPages(h);
      if (n < 0) return SQLITE_IOERR_READ;
      size = n * this.pageSize;
    }
    const H = this.m.HEAP32;
    H[pSize >> 2] = size % 0x100000000;
    H[(pSize >> 2) + 1] = Math.floor(size / 0x100000000);
    return SQLITE_OK;
  }

  xTruncate(pFile: number, sizeLo: number, sizeHi: number): number {
    const h = this.handles.get(pFile)!;
    const size = sizeHi * 0x100000000 + (sizeLo >>> 0);
    if (h.kind === "mem") {
      h.file.size = Math.min(h.file.size, size);
      return SQLITE_OK;
    }
    if (h.overlay === null) return SQLITE_IOERR_TRUNCATE;
    const n = Math.ceil(size / this.pageSize);
    for (const p of [...h.overlay.keys()]) if (p > n) h.overlay.delete(p);
    h.overlayNPages = n;
    return SQLITE_OK;
  }

  // ------------------------------------------------------------------------------- reads

  xRead(pFile: number, pData: number, iAmt: number, offLo: number, offHi: number): number {
    const h = this.handles.get(pFile)!;
    let offset = offHi * 0x100000000 + (offLo >>> 0);
    if (h.kind === "mem") {
      const f = h.file;
      const heap = this.m.HEAPU8;
      const n = Math.max(0, Math.min(iAmt, f.size - offset));
      if (n > 0) heap.set(f.data.subarray(offset, offset + n), pData);
      if (n < iAmt) {
        heap.fill(0, pData + n, pData + iAmt);
        return SQLITE_IOERR_SHORT_READ;
      }
      return SQLITE_OK;
    }
    this.stats.reads++;
    const ps = this.pageSize;
    const nPages = this.nPages(h);
    if (nPages < 0) return SQLITE_IOERR_READ;
    let dst = pData;
    let left = iAmt;
    let short = false;
    while (left > 0) {
      const pageNo = Math.floor(offset / ps) + 1;
      const inPage = offset % ps;
      const n = Math.min(left, ps - inPage);
      const rc = this.readInto(h, pageNo, nPages, dst, inPage, n);
      if (rc === SQLITE_IOERR_SHORT_READ) short = true;
      else if (rc !== SQLITE_OK) return rc;
      dst += n;
      offset += n;
      left -= n;
    }
    return short ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
  }

  private readInto(h: MainHandle, pageNo: number, nPages: number, dst: number, inPage: number, n: number): number {
    const own = h.overlay?.get(pageNo);
    if (own !== undefined) {
      this.m.HEAPU8.set(own.subarray(inPage, inPage + n), dst);
      return SQLITE_OK;
    }
    if (pageNo > nPages) {
      this.m.HEAPU8.fill(0, dst, dst + n);
      return SQLITE_IOERR_SHORT_READ;
    }
    const readLsn = this.snapshotOf(h);
    if (pageNo === 1) {
      if (!this.loadPage1(h, readLsn)) return SQLITE_IOERR_READ;
      this.m.HEAPU8.set(h.page1.subarray(inPage, inPage + n), dst);
      return SQLITE_OK;
    }
    let lsn = this.pool.read(pageNo, readLsn, this.m.HEAPU8, dst, inPage, n);
    if (lsn >= 0) this.stats.poolHits++;
    else {
      const bytes = this.fetch(pageNo, readLsn);
      if (bytes === null) return SQLITE_IOERR_READ;
      lsn = this.bridge.lsnAt(0);
      this.m.HEAPU8.set(bytes.subarray(inPage, inPage + n), dst);
    }
    this.checkVisible(h, pageNo, lsn, readLsn);
    return SQLITE_OK;
  }

  /** A page from storage through the bridge, cached in the pool; null (logged) on failure. */
  private fetch(pageNo: number, readLsn: number): Uint8Array | null {
    try {
      this.bridge.readPages([pageNo], [readLsn]);
    } catch (e) {
      if (!(e instanceof PageBridgeError)) throw e;
      this.o.warn("page-read-failed", { pageNo, readLsn, error: e.message });
      return null;
    }
    this.stats.bridgeReads++;
    const bytes = this.bridge.bytesAt(0);
    this.pool.insertFetched(pageNo, this.bridge.lsnAt(0), readLsn, bytes);
    return bytes;
  }

  /** Invariant 7 for readers; the writer learns page backlinks from what it reads at its newest snapshot. */
  private checkVisible(h: MainHandle, pageNo: number, lsn: number, readLsn: number): void {
    assert(lsn <= readLsn, 7, `page ${pageNo} version ${lsn} is above read point ${readLsn}`);
    if (this.writer === null) {
      assert(readLsn <= this.control.vdl(), 7, `reader's read point ${readLsn} is above VDL ${this.control.vdl()}`);
    } else if (readLsn === this.writer.latestLsn && h.lock >= SQLITE_LOCK_SHARED) {
      this.writer.noteNewest(pageNo, lsn);
    }
  }

  /** Loads page 1 at `readLsn` into the handle's private copy; false on I/O failure. */
  private loadPage1(h: MainHandle, readLsn: number): boolean {
    if (h.page1ReadLsn === readLsn) return true;
    let lsn = this.pool.read(1, readLsn, h.page1, 0);
    if (lsn < 0) {
      const bytes = this.fetch(1, readLsn);
      if (bytes === null) return false;
      lsn = this.bridge.lsnAt(0);
      h.page1.set(bytes);
    }
    this.checkVisible(h, 1, lsn, readLsn);
    h.page1ReadLsn = readLsn;
    const p = h.page1;
    const be32 = (o: number): number => ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;
    if (lsn === 0) h.nPagesAtRead = 0; // never written: an empty database
    else {
      // The in-header size is valid when the version-valid-for number matches the change counter,
      // which every SQLite since 3.7.0 maintains; nothing older ever wrote this volume.
      assert(be32(92) === be32(24), `page 1 at LSN ${lsn} carries a valid in-header database size`);
      h.nPagesAtRead = be32(28);
    }
    h.binding.schemaCookie = be32(40);
    return true;
  }

  /** Pages in the file as this handle sees it now; -1 if page 1 could not be read. */
  private nPages(h: MainHandle): number {
    if (h.overlay !== null) return h.overlayNPages;
    return this.loadPage1(h, this.snapshotOf(h)) ? h.nPagesAtRead : -1;
  }

  /** The handle's read point; outside a lock (SQLite reads the header at open), the current one. */
  private snapshotOf(h: MainHandle): number {
    if (h.lock >= SQLITE_LOCK_SHARED) return h.readLsn;
    return this.writer !== null ? this.writer.latestLsn : this.control.vdl();
  }

  // ------------------------------------------------------------------------------- writes

  xWrite(pFile: number, pData: number, iAmt: number, offLo: number, offHi: number): number {
    const h = this.handles.get(pFile)!;
    const offset = offHi * 0x100000000 + (offLo >>> 0);
    const heap = this.m.HEAPU8;
    if (h.kind === "mem") {
      const f = h.file;
      if (offset + iAmt > f.data.byteLength) {
        const grown = new Uint8Array(Math.max(offset + iAmt, 2 * f.data.byteLength, 8192));
        grown.set(f.data.subarray(0, f.size));
        f.data = grown;
      }
      f.data.set(heap.subarray(pData, pData + iAmt), offset);
      f.size = Math.max(f.size, offset + iAmt);
      return SQLITE_OK;
    }
    // SQLite writes the main database only in whole pages, only inside a write transaction.
    if (h.overlay === null || iAmt !== this.pageSize || offset % this.pageSize !== 0) {
      this.o.warn("unexpected-main-db-write", { offset, iAmt, inWriteTransaction: h.overlay !== null });
      return SQLITE_IOERR_WRITE;
    }
    const pageNo = offset / this.pageSize + 1;
    const copy = this.copyPage(heap, pData);
    h.overlay.set(pageNo, copy);
    if (pageNo === 1) h.binding.schemaCookie = ((copy[40]! << 24) | (copy[41]! << 16) | (copy[42]! << 8) | copy[43]!) >>> 0;
    if (pageNo > h.overlayNPages) h.overlayNPages = pageNo;
    return SQLITE_OK;
  }

  // Page copies are carved out of 1 MiB slabs: one small ArrayBuffer per xWrite cost 20–30% of an
  // autocommit insert in the spike (external backing store + GC accounting).
  private slab: ArrayBuffer | null = null;
  private slabOffset = 0;

  private copyPage(heap: Uint8Array, p: number): Uint8Array {
    const n = this.pageSize;
    if (this.slab === null || this.slabOffset + n > this.slab.byteLength) {
      this.slab = new ArrayBuffer(Math.max(1 << 20, n));
      this.slabOffset = 0;
    }
    const page = new Uint8Array(this.slab, this.slabOffset, n);
    page.set(heap.subarray(p, p + n));
    this.slabOffset += n;
    return page;
  }

  // ------------------------------------------------------------------------- locks (MVCC)

  xLock(pFile: number, lockType: number): number {
    const h = this.handles.get(pFile)!;
    if (h.kind === "mem") return SQLITE_OK;
    if (lockType >= SQLITE_LOCK_SHARED && h.lock === SQLITE_LOCK_NONE) {
      // Start of a read transaction: the snapshot.
      h.readLsn = this.writer !== null ? this.writer.latestLsn : this.control.vdl();
      h.binding.lastReadLsn = h.readLsn;
      this.control.setReadPoint(h.binding.readSlot, h.readLsn);
      h.lock = SQLITE_LOCK_SHARED;
    }
    if (lockType >= SQLITE_LOCK_RESERVED && h.lock < SQLITE_LOCK_RESERVED) {
      const rc = this.beginWrite(h);
      if (rc !== SQLITE_OK) return rc;
    }
    // Readers never block the writer (MVCC below SQLite): PENDING and EXCLUSIVE are granted as is.
    if (lockType > h.lock) h.lock = lockType;
    return SQLITE_OK;
  }

  private beginWrite(h: MainHandle): number {
    if (this.writer === null) return SQLITE_READONLY;
    if (!h.binding.allowWrite) {
      return this.refuse(SQLITE_BUSY, "NO_WRITE_LOCK", "write outside the engine's write lock");
    }
    if (this.writerHandle !== null && this.writerHandle !== h) {
      return this.refuse(SQLITE_BUSY, "WRITER_BUSY", "another connection of the writer holds RESERVED");
    }
    if (h.readLsn !== this.writer.latestLsn) {
      return this.refuse(SQLITE_BUSY, "STALE_SNAPSHOT",
        `database is locked: another transaction committed after this transaction's snapshot (${h.readLsn} < ${this.writer.latestLsn}); roll back and retry`);
    }
    const n = this.nPages(h);
    if (n < 0) return SQLITE_IOERR_READ;
    this.writerHandle = h;
    h.overlay = new Map();
    h.overlayNPages = n;
    h.txBaseLsn = h.readLsn;
    return SQLITE_OK;
  }

  xUnlock(pFile: number, lockType: number): number {
    const h = this.handles.get(pFile)!;
    if (h.kind === "mem") return SQLITE_OK;
    if (h.lock >= SQLITE_LOCK_RESERVED && lockType < SQLITE_LOCK_RESERVED) {
      // End of the write transaction. Committed or rolled back, the overlay holds nothing new —
      // unless SQLite committed without either capture point, which the refused pragmas prevent.
      if (h.overlay !== null && this.overlayDiffers(h)) {
        const before = this.writer!.latestLsn;
        const rc = this.publish(h, "unlock");
        if (rc !== SQLITE_OK || this.writer!.latestLsn !== before) {
          this.o.warn("commit-at-unlock", { pages: h.overlay?.size ?? 0, rc });
        }
      }
      h.overlay = null;
      if (this.writerHandle === h) this.writerHandle = null;
    }
    if (lockType === SQLITE_LOCK_NONE) {
      this.control.clearReadPoint(h.binding.readSlot);
      h.readLsn = -1;
      h.page1ReadLsn = -1;
    }
    h.lock = lockType;
    return SQLITE_OK;
  }

  xCheckReservedLock(pFile: number, pResOut: number): number {
    const h = this.handles.get(pFile);
    this.m.HEAP32[pResOut >> 2] = this.writerHandle !== null && this.writerHandle !== h ? 1 : 0;
    return SQLITE_OK;
  }

  // -------------------------------------------------------------------------- file controls

  xFileControl(pFile: number, op: number, pArg: number): number {
    const h = this.handles.get(pFile);
    if (h === undefined || h.kind !== "main") return SQLITE_NOTFOUND;
    switch (op) {
      case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
        return h.overlay !== null ? SQLITE_OK : SQLITE_IOERR_WRITE;
      case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
        return this.publish(h, "batch");
      case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
        if (h.overlay !== null) {
          h.overlay.clear();
          h.overlayNPages = h.nPagesAtRead;
        }
        return SQLITE_OK;
      case SQLITE_FCNTL_SYNC: {
        // A journaled commit: every page is written and the journal still exists. After a batch-atomic
        // commit this arrives too, with the overlay already empty.
        if (h.overlay === null || !this.overlayDiffers(h)) return SQLITE_NOTFOUND;
        const rc = this.publish(h, "sync");
        return rc === SQLITE_OK ? SQLITE_NOTFOUND : SQLITE_IOERR_FSYNC;
      }
      case SQLITE_FCNTL_PRAGMA:
        return this.pragma(h, pArg);
      default:
        return SQLITE_NOTFOUND;
    }
  }

  private overlayDiffers(h: MainHandle): boolean {
    return h.overlay!.size > 0 || h.overlayNPages !== h.nPagesAtRead;
  }

  /** Hands the overlay to the commit pipeline; the handle moves to the new snapshot on success. */
  private publish(h: MainHandle, mode: "batch" | "sync" | "unlock"): number {
    const writer = this.writer;
    assert(writer !== null && h.overlay !== null && this.writerHandle === h, "only the writer's RESERVED connection commits");
    let rc: number;
    try {
      rc = writer.commit(h.txBaseLsn, h.overlay, h.overlayNPages);
    } catch (e) {
      if (e instanceof AssertionError) throw e;
      this.o.warn("commit-failed", { error: (e as Error).message });
      rc = SQLITE_BUSY;
      this.lastVeto = { rc, reason: "COMMITS_STOPPED", message: `commit failed: ${(e as Error).message}` };
      return rc;
    }
    if (rc !== SQLITE_OK) {
      this.stats.vetoes++;
      this.lastVeto = writer.lastVeto;
      return rc;
    }
    this.stats.commits++;
    if (mode !== "batch") this.stats.syncCommits++;
    h.overlay.clear();
    h.readLsn = writer.latestLsn;
    h.txBaseLsn = writer.latestLsn;
    h.binding.lastReadLsn = h.readLsn;
    this.control.setReadPoint(h.binding.readSlot, h.readLsn);
    h.nPagesAtRead = h.overlayNPages;
    h.page1ReadLsn = -1;
    return SQLITE_OK;
  }

  private pragma(h: MainHandle, pArg: number): number {
    const m = this.m;
    const zName = m.HEAP32[(pArg >> 2) + 1]!;
    const zValue = m.HEAP32[(pArg >> 2) + 2]!;
    const name = m.UTF8ToString(zName).toLowerCase();
    const value = zValue !== 0 ? m.UTF8ToString(zValue).trim().toLowerCase().replace(/^['"]|['"]$/g, "") : null;
    const fail = (message: string): number => {
      m.HEAP32[pArg >> 2] = allocString(m, message);
      return SQLITE_ERROR;
    };
    const answer = (text: string): number => {
      m.HEAP32[pArg >> 2] = allocString(m, text);
      return SQLITE_OK;
    };
    switch (name) {
      case "locking_mode":
        if (value === "exclusive") return fail(`PRAGMA locking_mode=EXCLUSIVE is ${REFUSED}: other connections would keep stale page caches`);
        return SQLITE_NOTFOUND;
      case "journal_mode":
        if (value === "wal") return fail(`PRAGMA journal_mode=WAL is ${REFUSED}: the volume keeps versions itself (MVCC under SQLite)`);
        if (value === "off") return fail(`PRAGMA journal_mode=OFF is ${REFUSED}: a transaction could not roll back`);
        return SQLITE_NOTFOUND;
      case "synchronous":
        if (value === "off" || value === "0") return fail(`PRAGMA synchronous=OFF is ${REFUSED}: commits would bypass the redo capture`);
        return SQLITE_NOTFOUND;
      case "page_size":
        if (value !== null && Number(value) !== this.pageSize) return fail(`PRAGMA page_size=${value} is ${REFUSED}: the volume's page size is ${this.pageSize}`);
        return SQLITE_NOTFOUND;
      case "borealis_read_point":
        return answer(String(h.lock >= SQLITE_LOCK_SHARED ? h.readLsn : this.snapshotOf(h)));
      case "borealis_vdl":
        return answer(String(this.control.vdl()));
      case "borealis_role":
        return answer(this.role);
      default:
        return SQLITE_NOTFOUND;
    }
  }

  private refuse(rc: number, reason: "STALE_SNAPSHOT" | "NO_WRITE_LOCK" | "WRITER_BUSY", message: string): number {
    this.stats.vetoes++;
    this.lastVeto = { rc, reason, message };
    return rc;
  }
}
