/**
 * The page bridge: how a worker's synchronous VFS reads a page it does not have from the main
 * thread's asynchronous `VolumeIO` — the one blocking hop of the engine, taken only on a buffer pool
 * miss (and, rarely, by the writer to learn a page's previous version).
 *
 * One request slot per worker in a SharedArrayBuffer. The worker writes the request (a batch of
 * (page, read point) pairs), flips the state word to REQUEST, notifies, spins briefly (a reply
 * that arrives within the spin saves a thread wake-up, ~40–75 µs on the spike's VMs) and then
 * `Atomics.wait`s, bounded by a timeout. The main thread never blocks: it waits with
 * `Atomics.waitAsync`, calls `VolumeIO.readPage` for each page, writes page LSNs and bytes back,
 * flips the state to RESPONSE and notifies. A failure travels back as a status and a message and
 * becomes SQLITE_IOERR_READ in the VFS.
 */
import { assert } from "../../core/assert.js";

const IDLE = 0;
const REQUEST = 1;
const RESPONSE = 2;
const STOPPED = 3;

const C_STATE = 0;
const C_COUNT = 1;
const C_STATUS = 2;
const C_MESSAGE_LEN = 3;
const CTRL_I32 = 8;

const STATUS_OK = 0;
const STATUS_ERROR = 1;

/** Batches are bounded by bytes, not by count: a few MiB of page images per hop at most. */
const BATCH_BYTES = 4 << 20;
const MAX_MESSAGE = 4096;

interface Layout {
  readonly req: number;
  readonly lsn: number;
  readonly data: number;
  readonly total: number;
}

function layout(maxBatch: number, pageSize: number): Layout {
  const req = CTRL_I32 * 4;
  const lsn = req + maxBatch * 16;
  const data = lsn + maxBatch * 8;
  const total = data + Math.max(maxBatch * pageSize, MAX_MESSAGE);
  return { req, lsn, data, total };
}

export function createPageBridge(pageSize: number): SharedArrayBuffer {
  const maxBatch = Math.max(1, Math.min(256, Math.floor(BATCH_BYTES / pageSize)));
  const sab = new SharedArrayBuffer(layout(maxBatch, pageSize).total + 8);
  const tail = new Int32Array(sab, sab.byteLength - 8, 2);
  tail[0] = maxBatch;
  tail[1] = pageSize;
  return sab;
}

class BridgeViews {
  readonly ctrl: Int32Array;
  readonly req: Float64Array;
  readonly lsns: Float64Array;
  readonly data: Uint8Array;
  readonly maxBatch: number;
  readonly pageSize: number;

  constructor(sab: SharedArrayBuffer) {
    const tail = new Int32Array(sab, sab.byteLength - 8, 2);
    this.maxBatch = tail[0]!;
    this.pageSize = tail[1]!;
    const l = layout(this.maxBatch, this.pageSize);
    this.ctrl = new Int32Array(sab, 0, CTRL_I32);
    this.req = new Float64Array(sab, l.req, this.maxBatch * 2);
    this.lsns = new Float64Array(sab, l.lsn, this.maxBatch);
    this.data = new Uint8Array(sab, l.data, l.total - l.data);
  }
}

export class PageBridgeError extends Error {
  override name = "PageBridgeError";
}

/** Worker side. */
export class PageBridgeClient {
  private readonly v: BridgeViews;
  private readonly decoder = new TextDecoder();
  hops = 0;

  constructor(sab: SharedArrayBuffer, private readonly spinIterations: number, private readonly timeoutMs: number) {
    this.v = new BridgeViews(sab);
  }

  get maxBatch(): number {
    return this.v.maxBatch;
  }

  /**
   * Reads `pages[i]` at `readPoints[i]` (at most `maxBatch`). Blocks. Afterwards `lsnAt(i)` and
   * `bytesAt(i)` give the results, valid until the next call. Throws PageBridgeError on failure.
   */
  readPages(pages: readonly number[], readPoints: readonly number[]): void {
    const { ctrl, req } = this.v;
    const n = pages.length;
    assert(n >= 1 && n <= this.v.maxBatch && readPoints.length === n, `page bridge batch of ${n}`);
    const before = Atomics.load(ctrl, C_STATE);
    if (before === RESPONSE) Atomics.store(ctrl, C_STATE, IDLE); // the late answer to a timed-out read
    else if (before === REQUEST) throw new PageBridgeError("an earlier page read is still unanswered");
    else if (before === STOPPED) throw new PageBridgeError("engine is shutting down");
    for (let i = 0; i < n; i++) {
      req[2 * i] = pages[i]!;
      req[2 * i + 1] = readPoints[i]!;
    }
    ctrl[C_COUNT] = n;
    Atomics.store(ctrl, C_STATE, REQUEST);
    Atomics.notify(ctrl, C_STATE);
    this.hops++;
    for (let i = 0; i < this.spinIterations && Atomics.load(ctrl, C_STATE) === REQUEST; i++);
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const state = Atomics.load(ctrl, C_STATE);
      if (state === RESPONSE) break;
      if (state === STOPPED) throw new PageBridgeError("engine is shutting down");
      const left = deadline - Date.now();
      if (left <= 0) {
        // The main thread may still answer; the slot stays unusable until it does.
        throw new PageBridgeError(`page read timed out after ${this.timeoutMs} ms`);
      }
      Atomics.wait(ctrl, C_STATE, REQUEST, left);
    }
    const status = ctrl[C_STATUS];
    Atomics.store(ctrl, C_STATE, IDLE);
    if (status !== STATUS_OK) {
      const len = ctrl[C_MESSAGE_LEN]!;
      throw new PageBridgeError(this.decoder.decode(this.v.data.slice(0, len)));
    }
  }

  lsnAt(i: number): number {
    return this.v.lsns[i]!;
  }

  bytesAt(i: number): Uint8Array {
    return this.v.data.subarray(i * this.v.pageSize, (i + 1) * this.v.pageSize);
  }
}

type WaitAsync = (a: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export type PageReader = (pageNo: number, readPoint: number) => Promise<{ bytes: Uint8Array; pageLsn: number }>;

/** Main-thread side: serves one worker's slot until `stop()`. */
export class PageBridgeServer {
  private readonly v: BridgeViews;
  private readonly encoder = new TextEncoder();
  private stopped = false;

  constructor(sab: SharedArrayBuffer, private readonly read: PageReader) {
    this.v = new BridgeViews(sab);
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    Atomics.store(this.v.ctrl, C_STATE, STOPPED);
    Atomics.notify(this.v.ctrl, C_STATE);
  }

  private async loop(): Promise<void> {
    const { ctrl } = this.v;
    while (!this.stopped) {
      const state = Atomics.load(ctrl, C_STATE);
      if (state !== REQUEST) {
        if (state === STOPPED) return;
        const w = waitAsync(ctrl, C_STATE, state);
        if (w.async) await w.value;
        continue;
      }
      await this.serve();
    }
  }

  private async serve(): Promise<void> {
    const { ctrl, req, lsns, data, pageSize } = this.v;
    const n = ctrl[C_COUNT]!;
    try {
      assert(n >= 1 && n <= this.v.maxBatch, `page bridge request of ${n} pages`);
      const reads: Promise<{ bytes: Uint8Array; pageLsn: number }>[] = [];
      for (let i = 0; i < n; i++) reads.push(this.read(req[2 * i]!, req[2 * i + 1]!));
      const pages = await Promise.all(reads);
      for (let i = 0; i < n; i++) {
        const p = pages[i]!;
        if (p.bytes.byteLength !== pageSize) throw new Error(`volume returned ${p.bytes.byteLength} bytes for a ${pageSize}-byte page`);
        lsns[i] = p.pageLsn;
        data.set(p.bytes, i * pageSize);
      }
      ctrl[C_STATUS] = STATUS_OK;
    } catch (e) {
      const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      const bytes = this.encoder.encode(text).subarray(0, MAX_MESSAGE);
      data.set(bytes, 0);
      ctrl[C_MESSAGE_LEN] = bytes.byteLength;
      ctrl[C_STATUS] = STATUS_ERROR;
    }
    if (this.stopped) return;
    Atomics.store(ctrl, C_STATE, RESPONSE);
    Atomics.notify(ctrl, C_STATE);
  }
}
