/**
 * The storage node, in process: hosts segments of any number of volumes and answers the storage
 * protocol's requests (every type in `wire/messages.ts` but `hello`, which the RPC layer answers).
 * The RPC server (`wire/rpc-server.ts`) calls `handle`; errors are thrown `BorealisError`s, which it
 * turns into error responses.
 *
 * The write path (Aurora's steps 1–2, ARCHITECTURE D6): check epochs → validate the records against
 * the segment → append the batch to the hot log and wait for the fsync that covers it (invariant 2)
 * → join the records to the segment's chain → acknowledge with the segment's SCL. Background work
 * (sorting into the page store, images, retention) runs in time-bounded slices on the env's clock
 * (`materializer.ts`).
 *
 * Durable state and recovery: segment metadata (geometry, epochs, annulments, knownVdl, sorted point,
 * retention) lives in the page store and is committed before the request that changed it is
 * answered; records above the sorted point live in the hot log. `open` on an existing directory
 * reloads the metadata, replays the hot log (annulments re-applied as records rejoin), and rebuilds
 * every chain from its sorted point.
 *
 * Layout of the data directory:
 *
 *     DIR/log/     hot log files (hot-log.ts)
 *     DIR/pages/   the LMDB page store (page-store.ts), unless a store is passed in
 */
import * as path from "node:path";
import { assert } from "../core/assert.js";
import { BorealisError } from "../core/errors.js";
import { Epoch, Lsn, NO_LSN, segmentKeyString, type Az, type Epochs, type NodeId, type PageNo, type SegmentKey } from "../core/types.js";
import type { Env, Timer } from "../env/env.js";
import type { Request, Response, ResponseFor, SegmentGeometry, SegmentState } from "../wire/messages.js";
import { RecordFlag, encodeRecord, type EncodedRecord } from "../wire/record.js";
import { applyRedo } from "../wire/redo-payload.js";
import { HotLog, type HotLogStats, type ReplayReport } from "./hot-log.js";
import { Materializer, type MaterializerHost, type MaterializerStats } from "./materializer.js";
import { LmdbPageStore, type PageStore, type PageStoreOp } from "./page-store.js";
import { MAX_ANNULMENTS, Segment, type Annulment, type HeldRecord } from "./segment.js";

export interface StorageNodeConfig {
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly dataDir: string;
  /** Hot log files roll at this size. Default 64 MiB. */
  readonly hotLogFileBytes?: number;
  /** Bytes waiting for the hot log's next fsync before writes are refused with BACKPRESSURE. Default 32 MiB. */
  readonly hotLogMaxPendingBytes?: number;
  /** Records in a page's chain since its last image before a new image is stored. Default 32. */
  readonly materializeThreshold?: number;
  /** Reads are served at read points ≥ knownVdl − retainLsns (at least). Default 1,000,000. */
  readonly retainLsns?: number;
  /** Bytes of unsorted records held in memory, all segments together, before writes are refused. Default 256 MiB. */
  readonly maxUnsortedBytes?: number;
  /** Bytes of records sorted into the page store per commit. Default 4 MiB. */
  readonly sortBatchBytes?: number;
  /** Sorting waits for this many bytes per segment or `sortMaxDelayMs`. Defaults 256 KiB, 200 ms. */
  readonly sortMinBytes?: number;
  readonly sortMaxDelayMs?: number;
  /** Upper bound on a readRecords answer, whatever the request asks. Default 4 MiB. */
  readonly maxReadRecordsBytes?: number;
  /** Segments one node hosts at most. Default 10,000. */
  readonly maxSegments?: number;
  /** Background work runs in slices of this many milliseconds. Default 10. */
  readonly backgroundSliceMs?: number;
  /** Pause between slices while work remains. Default 1 ms. */
  readonly backgroundPauseMs?: number;
  /** Run background work on the clock (default true); tests turn it off and call `runBackgroundUntilIdle`. */
  readonly backgroundWork?: boolean;
}

export interface StorageNodeStats {
  readonly segments: number;
  readonly unsortedBytes: number;
  readonly fenced: boolean;
  readonly hotLog: HotLogStats;
  readonly background: MaterializerStats;
  readonly replay: ReplayReport;
}

type Handler<T extends Request["type"]> = (request: Extract<Request, { type: T }>) => Promise<ResponseFor[T & keyof ResponseFor]>;

export class StorageNode {
  private readonly segments = new Map<string, Segment>();
  private readonly materializer: Materializer;
  private readonly log;
  private unsortedBytesTotal = 0;
  private storeLock: Promise<unknown> = Promise.resolve();
  private storeError: Error | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private backgroundTimer: Timer | undefined;
  private backgroundRun: Promise<void> | undefined;
  /** Work arrived while a slice was running: run another one after it. */
  private backgroundKicked = false;
  private hotLog!: HotLog;
  private replayReport!: ReplayReport;
  private scrubReport: { scrubbedEntries: number; scrubMs: number } = { scrubbedEntries: 0, scrubMs: 0 };

  private constructor(
    private readonly env: Env,
    readonly config: StorageNodeConfig,
    readonly store: PageStore,
  ) {
    this.log = env.log.child({ node: config.nodeId });
    const node = this;
    const host: MaterializerHost = {
      store,
      clock: env.clock,
      log: this.log,
      segments: () => this.segments.values(),
      withStoreLock: (fn) => this.withStoreLock(fn),
      commit: (ops) => this.commitStore(ops),
      mutate: (segment, fn) => this.mutate(segment, fn),
      release: (records) => this.release(records),
      get running() { return !node.closing; },
    };
    const options = {
      ...(config.materializeThreshold !== undefined ? { materializeThreshold: config.materializeThreshold } : {}),
      ...(config.retainLsns !== undefined ? { retainLsns: config.retainLsns } : {}),
      ...(config.sortBatchBytes !== undefined ? { sortBatchBytes: config.sortBatchBytes } : {}),
      ...(config.sortMinBytes !== undefined ? { sortMinBytes: config.sortMinBytes } : {}),
      ...(config.sortMaxDelayMs !== undefined ? { sortMaxDelayMs: config.sortMaxDelayMs } : {}),
    };
    this.materializer = new Materializer(host, options);
  }

  /**
   * Opens (or creates) the node's data directory and recovers: metadata from the page store, records
   * above each segment's sorted point from the hot log, chains rebuilt, annulments re-applied.
   * `store` replaces the LMDB store in DIR/pages (the simulator and tests pass a MemoryPageStore).
   */
  static async open(env: Env, config: StorageNodeConfig, store?: PageStore): Promise<StorageNode> {
    const started = env.clock.nowMs();
    await env.disk.mkdirp(config.dataDir);
    let pageStore = store;
    if (pageStore === undefined) {
      const dir = path.join(config.dataDir, "pages");
      await env.disk.mkdirp(dir);
      pageStore = LmdbPageStore.open(dir);
    }
    const node = new StorageNode(env, config, pageStore);
    try {
      await node.recover();
    } catch (e) {
      await pageStore.close().catch(() => {});
      throw e;
    }
    node.log.info("storage-node-open", {
      segments: node.segments.size, ms: Math.round(env.clock.nowMs() - started), store: pageStore.kind, ...node.replayReport, ...node.scrubReport,
    });
    node.scheduleBackground(0);
    return node;
  }

  private async recover(): Promise<void> {
    // Bit rot at rest can damage the store's own index pages, which carry no checksum: lookups then
    // land in the wrong leaf and reads return older versions whose checksums are fine. Check the
    // structure before serving anything; a damaged store is not served at all (the node needs a new
    // disk and a rebuild from its peers), so the node is unavailable rather than wrong (invariant 9).
    const scrubStarted = this.env.clock.nowMs();
    const scrub = this.store.verifyStructure();
    this.scrubReport = { scrubbedEntries: scrub.entries, scrubMs: Math.round(this.env.clock.nowMs() - scrubStarted) };
    if (scrub.problems.length > 0) {
      this.log.error("page-store-corrupt", { problems: scrub.problems });
      throw new BorealisError("CORRUPT_DATA", `the page store is damaged (${scrub.problems.length} problem(s), first: ${scrub.problems[0]}); not served — the node needs a new disk`);
    }
    for (const meta of this.store.listSegments((what, error) => this.log.error("segment-metadata-corrupt", { key: what, error }))) {
      const segment = Segment.fromMeta(meta);
      this.segments.set(segmentKeyString(segment.key), segment);
    }
    let unknown = 0;
    let conflicts = 0;
    const { hotLog, report } = await HotLog.open(this.env.disk, this.log, {
      dir: path.join(this.config.dataDir, "log"),
      nodeId: this.config.nodeId,
      ...(this.config.hotLogFileBytes !== undefined ? { fileSizeBytes: this.config.hotLogFileBytes } : {}),
      ...(this.config.hotLogMaxPendingBytes !== undefined ? { maxPendingBytes: this.config.hotLogMaxPendingBytes } : {}),
    }, (batch, log) => {
      const segment = this.segments.get(segmentKeyString(batch.key));
      if (segment === undefined) {
        unknown += batch.records.length;
        return 0;
      }
      const result = this.mutate(segment, () => segment.join(batch.records, batch.writerVdl, batch.fileSeq));
      conflicts += result.conflicts;
      for (const h of result.evicted) log.dropRefs(h.fileSeq, 1);
      return result.kept;
    });
    this.hotLog = hotLog;
    this.replayReport = report;
    if (unknown > 0) this.log.warn("hot-log-records-without-segment", { records: unknown });
    if (conflicts > 0) this.log.warn("hot-log-epoch-conflicts", { records: conflicts });
  }

  get fenced(): boolean {
    return this.hotLog.fenced || this.storeError !== undefined;
  }

  stats(): StorageNodeStats {
    return {
      segments: this.segments.size, unsortedBytes: this.unsortedBytesTotal, fenced: this.fenced,
      hotLog: this.hotLog.stats(), background: this.materializer.stats(), replay: this.replayReport,
    };
  }

  /** The hot log's files and their references (for status and tests). */
  hotLogFiles(): ReturnType<HotLog["fileRefs"]> {
    return this.hotLog.fileRefs();
  }

  /** Answers one request. Throws a BorealisError for every refusal. */
  async handle(request: Request): Promise<Response> {
    if (this.closing) throw new BorealisError("SHUTTING_DOWN", `storage node ${this.config.nodeId} is shutting down`);
    switch (request.type) {
      case "hello":
        throw new BorealisError("PROTOCOL_ERROR", "hello is answered by the RPC layer, not the storage node");
      case "ping":
        return { type: "pong" };
      case "nodeStatus":
        return this.nodeStatus();
      case "openSegment":
        return this.openSegment(request);
      case "writeBatch":
        return this.writeBatch(request);
      case "getPage":
        return this.getPage(request);
      case "getSegmentState":
        return this.getSegmentState(request);
      case "setEpoch":
        return this.setEpoch(request);
      case "readRecords":
        return this.readRecords(request);
      case "annul":
        return this.annul(request);
    }
  }

  /** Stops background work, waits for in-flight fsyncs and store commits, closes the hot log and store. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.closing = true;
      this.backgroundTimer?.cancel();
      this.backgroundTimer = undefined;
      await this.backgroundRun;
      await this.withStoreLock(async () => {});
      await this.hotLog.close();
      await this.store.close();
      this.log.info("storage-node-closed", {});
    })();
    return this.closed;
  }

  /** Runs background work until nothing is left (tests, and benchmarks that want a settled node). */
  async runBackgroundUntilIdle(): Promise<void> {
    await this.materializer.runUntilIdle();
  }

  // --------------------------------------------------------------------------------------- requests

  private nodeStatus(): ResponseFor["nodeStatus"] {
    const segments: SegmentState[] = [...this.segments.values()].map((s) => s.state)
      .sort((a, b) => a.geometry.volumeId < b.geometry.volumeId ? -1 : a.geometry.volumeId > b.geometry.volumeId ? 1 : a.geometry.pgId - b.geometry.pgId);
    return { type: "nodeStatus", nodeId: this.config.nodeId, az: this.config.az, fenced: this.fenced, segments };
  }

  private openSegment: Handler<"openSegment"> = async ({ geometry, epochs }) => {
    const existing = this.existingSegment(geometry, epochs);
    if (existing !== undefined) return { type: "segmentState", state: existing.state };
    const segment = Segment.create(geometry, epochs); // validates the geometry
    return this.withStoreLock(async () => {
      // Another openSegment for the same key may have won the lock first.
      const again = this.existingSegment(geometry, epochs);
      if (again !== undefined) return { type: "segmentState", state: again.state };
      if (this.segments.size >= (this.config.maxSegments ?? 10_000)) {
        throw new BorealisError("INVALID_ARGUMENT", `node hosts ${this.segments.size} segments, its limit`);
      }
      this.checkStoreWritable();
      await this.commitStore([{ op: "putSegment", meta: segment.meta() }]);
      this.segments.set(segmentKeyString(segment.key), segment);
      this.log.info("segment-opened", { segment: segmentKeyString(segment.key), ...geometry, ...epochs });
      return { type: "segmentState", state: segment.state };
    });
  };

  private existingSegment(geometry: SegmentGeometry, epochs: Epochs): Segment | undefined {
    const existing = this.segments.get(segmentKeyString(geometry));
    if (existing === undefined) return undefined;
    const g = existing.geometry;
    if (g.firstPage !== geometry.firstPage || g.pageCount !== geometry.pageCount || g.pageSize !== geometry.pageSize) {
      throw new BorealisError("SEGMENT_EXISTS",
        `segment ${segmentKeyString(geometry)} exists with pages ${g.firstPage}+${g.pageCount} of ${g.pageSize} bytes`,
        { firstPage: g.firstPage, pageCount: g.pageCount, pageSize: g.pageSize });
    }
    existing.checkEpochs(epochs, true);
    return existing;
  }

  private writeBatch: Handler<"writeBatch"> = async ({ key, epochs, writerVdl, records }) => {
    const segment = this.segment(key);
    if (this.fenced) throw this.fencedError();
    const own = records.map((r) => (r.bytes.byteLength > 0 ? r : encodeRecord(r, key)));
    const fresh = segment.planWrite(own, epochs);
    if (fresh.length === 0 && writerVdl <= segment.knownVdl) {
      // Everything is held already, and held means durable: nothing to wait for.
      return { type: "writeAck", scl: segment.scl };
    }
    let bytes = 0;
    for (const r of fresh) bytes += r.bytes.byteLength;
    if (bytes > 0 && this.unsortedBytesTotal + bytes > (this.config.maxUnsortedBytes ?? 256 * 1024 * 1024)) {
      this.scheduleBackground(0);
      throw new BorealisError("BACKPRESSURE", `storage node holds ${this.unsortedBytesTotal} bytes of unsorted records`);
    }
    const fileSeq = await this.hotLog.append({ key, writerVdl, records: fresh });
    let conflicts: number;
    try {
      const result = this.mutate(segment, () => segment.join(fresh, writerVdl, fileSeq));
      this.hotLog.addRefs(fileSeq, result.kept);
      this.release(result.evicted);
      conflicts = result.conflicts;
    } finally {
      this.hotLog.dropRefs(fileSeq, 1);
    }
    this.scheduleBackground(this.config.backgroundPauseMs ?? 1);
    if (conflicts > 0) {
      throw new BorealisError("EPOCH_NOT_ADOPTED", `segment holds records of an older epoch where this batch's records belong; annul first`,
        { epoch: segment.epochs.volumeEpoch, membershipEpoch: segment.epochs.membershipEpoch });
    }
    // A setEpoch or annul may have landed while the batch was being made durable: its writer has
    // been fenced and learns it now rather than from its next batch.
    segment.checkEpochs(epochs, true);
    return { type: "writeAck", scl: segment.scl };
  };

  private getPage: Handler<"getPage"> = async ({ key, epochs, pageNo, readPoint, minScl }) => {
    const segment = this.segment(key);
    segment.checkWritable(epochs);
    if (!segment.containsPage(pageNo)) {
      throw new BorealisError("PAGE_OUT_OF_RANGE", `page ${pageNo} is not in ${segmentKeyString(key)}`, { pageNo });
    }
    // The caller names the PG's last record at or below the read point (`minScl`): a segment whose
    // chain reaches it holds every record the page needs, even when the read point is far above its
    // SCL because the PG saw no writes since.
    if (minScl > readPoint) {
      throw new BorealisError("INVALID_ARGUMENT", `minScl ${minScl} is above read point ${readPoint}`);
    }
    if (minScl > segment.scl) {
      throw new BorealisError("READ_POINT_ABOVE_SCL", `segment is complete to ${segment.scl}, the read needs ${minScl}`, { scl: segment.scl });
    }
    if (readPoint < segment.retentionLsn) {
      throw new BorealisError("READ_POINT_BELOW_RETENTION", `read point ${readPoint} is below retention ${segment.retentionLsn}`, { retentionLsn: segment.retentionLsn });
    }
    // Records above SCL (past a gap) are not part of any read: the chain stops at SCL.
    return { type: "page", ...this.readPage(segment, pageNo, Lsn(Math.min(readPoint, segment.scl))) };
  };

  /**
   * The page as of `readPoint`: newest stored image ≤ it, then stored records up to the sorted point,
   * then chain records in memory. Synchronous, so memory and store are read at one instant.
   */
  private readPage(segment: Segment, pageNo: PageNo, readPoint: Lsn): { pageLsn: Lsn; bytes: Uint8Array } {
    const key = segment.key;
    const image = this.store.newestImage(key, pageNo, readPoint);
    const bytes = image?.bytes ?? new Uint8Array(segment.geometry.pageSize);
    assert(bytes.byteLength === segment.geometry.pageSize, 9, `stored image of page ${pageNo} has ${bytes.byteLength} bytes`);
    let pageLsn = image?.lsn ?? NO_LSN;
    const sorted = segment.materializedLsn;
    const storeUpTo = Lsn(Math.min(readPoint, sorted));
    const records: EncodedRecord[] = storeUpTo > pageLsn ? this.store.pageRecords(key, pageNo, pageLsn, storeUpTo) : [];
    // Records above the sorted point are in memory (a sort that has committed but not yet been noted
    // may also have them in the store; the LSN bounds keep each record applied once).
    const memAfter = Lsn(Math.max(pageLsn, sorted, records.length > 0 ? records[records.length - 1]!.lsn : NO_LSN));
    for (const r of segment.pageRecords(pageNo, memAfter, readPoint)) records.push(r);
    for (const r of records) {
      assert(r.lsn > pageLsn, 3, `records of page ${pageNo} apply in LSN order (${r.lsn} after ${pageLsn})`);
      // A byte-range diff applies only to the version it was made against (its page backlink): if
      // that is not the version built so far, a record or the base image is missing — the store lost
      // it, or a corrupt index hid it — and the result would be wrong bytes. Refused, never served (9).
      if ((r.flags & RecordFlag.FULL_IMAGE) === 0 && r.prevLsnOfPage !== pageLsn) {
        this.log.error("page-chain-broken", { segment: segmentKeyString(key), pageNo, lsn: r.lsn, prevLsnOfPage: r.prevLsnOfPage, builtFrom: pageLsn, readPoint });
        throw new BorealisError("CORRUPT_DATA", `page ${pageNo} of ${segmentKeyString(key)}: record ${r.lsn} is a diff against version ${r.prevLsnOfPage}, but the stored chain gives version ${pageLsn}; not served`);
      }
      applyRedo(bytes, r);
      pageLsn = r.lsn;
    }
    return { pageLsn, bytes };
  }

  private getSegmentState: Handler<"getSegmentState"> = async ({ key, epochs }) => {
    const segment = this.segment(key);
    segment.checkEpochs(epochs, true);
    return { type: "segmentState", state: segment.state };
  };

  /**
   * Raises the epochs durably (recovery step 1). A request may also carry earlier recoveries'
   * annulments (`annulments`, when the wire has them): a segment that missed one applies it here,
   * before it answers anything at the new epoch.
   */
  private setEpoch: Handler<"setEpoch"> = async (request) => {
    const { key, epochs } = request;
    const history = annulmentsOf(request);
    const segment = this.segment(key);
    segment.checkEpochs(epochs, true);
    return this.adopt(segment, epochs, history);
  };

  private readRecords: Handler<"readRecords"> = async ({ key, epochs, afterLsn, upToLsn, maxBytes }) => {
    const segment = this.segment(key);
    segment.checkEpochs(epochs, true);
    if (afterLsn < segment.retentionLsn) {
      throw new BorealisError("READ_POINT_BELOW_RETENTION", `records after ${afterLsn} are below retention ${segment.retentionLsn}`, { retentionLsn: segment.retentionLsn });
    }
    const limit = Math.max(1, Math.min(maxBytes, this.config.maxReadRecordsBytes ?? 4 * 1024 * 1024));
    const sorted = segment.materializedLsn;
    const records: EncodedRecord[] = [];
    let bytes = 0;
    const storeUpTo = Lsn(Math.min(upToLsn, sorted));
    if (storeUpTo > afterLsn) {
      const fromStore = this.store.recordsByLsn(key, afterLsn, storeUpTo, limit);
      if (fromStore.more) return { type: "records", scl: segment.scl, more: true, records: fromStore.records };
      for (const r of fromStore.records) { records.push(r); bytes += r.bytes.byteLength; }
    }
    const memAfter = Lsn(Math.max(afterLsn, sorted));
    let more = false;
    for (const r of segment.memoryRecords(memAfter, upToLsn)) {
      if (records.length > 0 && bytes + r.bytes.byteLength > limit) { more = true; break; }
      records.push(r);
      bytes += r.bytes.byteLength;
    }
    return { type: "records", scl: segment.scl, more, records };
  };

  /**
   * Adopts the epochs and applies every annulment of the volume's history it has not applied (recovery
   * step 3; a segment that missed recoveries catches up in one step). Once the current epoch's own
   * annulment is applied the segment takes writes at that epoch.
   */
  private annul: Handler<"annul"> = async (request) => {
    const { key, epochs } = request;
    const annulments = annulmentsOf(request);
    const segment = this.segment(key);
    segment.checkEpochs(epochs, true);
    return this.adopt(segment, epochs, annulments);
  };

  /** setEpoch and annul: durable first (invariant 8), then applied to memory, under the store lock. */
  private adopt(segment: Segment, epochs: Epochs, annulments: readonly Annulment[]): Promise<ResponseFor["annul"]> {
    for (const a of annulments) {
      if (!Number.isSafeInteger(a.epoch) || !Number.isSafeInteger(a.aboveLsn) || a.epoch < 0 || a.aboveLsn < 0 || a.epoch > epochs.volumeEpoch) {
        throw new BorealisError("INVALID_ARGUMENT", `annulment {epoch ${a.epoch}, above ${a.aboveLsn}} is not valid with volume epoch ${epochs.volumeEpoch}`);
      }
    }
    return this.withStoreLock(async () => {
      segment.checkEpochs(epochs, true);
      const key = segment.key;
      const cur = segment.epochs;
      const raised = epochs.volumeEpoch !== cur.volumeEpoch || epochs.membershipEpoch !== cur.membershipEpoch;
      const added = segment.newAnnulments(annulments);
      if (added.length === 0) {
        // Nothing to annul (or a retried recovery step): only the epochs may be news.
        if (raised) {
          this.checkStoreWritable();
          await this.commitStore([{ op: "putSegment", meta: segment.meta({ epochs }) }]);
          segment.adoptEpochs(epochs);
          this.log.info("segment-epochs-raised", { segment: segmentKeyString(key), ...epochs });
        }
        return { type: "segmentState", state: segment.state };
      }
      this.checkStoreWritable();
      const next = segment.annulmentsWith(added);
      if (next.length > MAX_ANNULMENTS) throw new BorealisError("INVALID_ARGUMENT", `segment would hold ${next.length} annulments`);
      const lowest = Math.min(...added.map((a) => a.aboveLsn));
      const storeCut = lowest < segment.materializedLsn ? this.planStoreAnnul(segment, added) : undefined;
      const ops: PageStoreOp[] = storeCut?.ops ?? [];
      ops.push({
        op: "putSegment",
        meta: segment.meta({
          epochs, annulments: next,
          // An annulment point is not yet durable on a write quorum (recovery re-replicates after
          // annulling), so it is not a known VDL: a later recovery must still examine what is above
          // the last VDL a writer announced.
          ...(next.some((a) => a.epoch === epochs.volumeEpoch) ? { writableEpoch: epochs.volumeEpoch } : {}),
          ...(storeCut !== undefined ? { materializedLsn: storeCut.sortedTip, retentionLsn: Lsn(Math.min(segment.retentionLsn, storeCut.sortedTip)) } : {}),
        }),
      });
      // Durable first: an annulment that is answered must survive a restart (invariant 8).
      await this.commitStore(ops);
      const removed = this.mutate(segment, () => segment.applyAnnul(epochs, added, storeCut?.sortedTip));
      this.release(removed);
      if (storeCut !== undefined) this.materializer.forget(segment);
      this.log.info("segment-annulled", {
        segment: segmentKeyString(key), ...epochs, annulments: added, dropped: removed.length, scl: segment.scl,
        storeRecordsDropped: storeCut?.dropped ?? 0,
      });
      return { type: "segmentState", state: segment.state };
    });
  }

  /**
   * An annulment below the sorted point: only possible if a writer announced a VDL above the
   * recovered one, which recovery rules out (sorting stops at knownVdl). Handled anyway, slowly:
   * drop the annulled records from the store, and every image of their pages above `aboveLsn`.
   * Returns undefined when the store holds nothing the annulment covers.
   */
  private planStoreAnnul(segment: Segment, added: readonly Annulment[]): { ops: PageStoreOp[]; sortedTip: Lsn; dropped: number } | undefined {
    const key = segment.key;
    const aboveLsn = Lsn(Math.min(...added.map((a) => a.aboveLsn)));
    const sorted = segment.materializedLsn;
    const { records } = this.store.recordsByLsn(key, aboveLsn, sorted, Number.MAX_SAFE_INTEGER);
    const doomed = records.filter((r) => added.some((a) => r.lsn > a.aboveLsn && r.epoch < a.epoch));
    if (doomed.length === 0) return undefined;
    this.log.warn("annul-below-sorted-point", { segment: segmentKeyString(key), aboveLsn, sorted, records: doomed.length });
    const ops: PageStoreOp[] = [];
    const pages = new Set<number>();
    for (const r of doomed) {
      ops.push({ op: "deleteRecord", key, pageNo: r.pageNo, lsn: r.lsn });
      pages.add(r.pageNo);
    }
    for (const page of pages) {
      for (const lsn of this.store.imageLsns(key, page as PageNo, aboveLsn, sorted, Number.MAX_SAFE_INTEGER)) {
        ops.push({ op: "deleteImage", key, pageNo: page as PageNo, lsn });
      }
    }
    const below = this.store.recordIndexDesc(key, NO_LSN, aboveLsn, 1);
    const sortedTip = Lsn(Math.max(below[0]?.lsn ?? NO_LSN, Math.min(segment.retentionLsn, aboveLsn)));
    return { ops, sortedTip, dropped: doomed.length };
  }

  // ---------------------------------------------------------------------------------------- helpers

  private segment(key: SegmentKey): Segment {
    const s = this.segments.get(segmentKeyString(key));
    if (s === undefined) throw new BorealisError("SEGMENT_NOT_FOUND", `node ${this.config.nodeId} hosts no segment ${segmentKeyString(key)}`);
    return s;
  }

  private fencedError(): BorealisError {
    const cause = this.storeError ?? undefined;
    return new BorealisError("STORAGE_FENCED", `node ${this.config.nodeId} is fenced after a disk error${cause ? `: ${cause.message}` : ""}`);
  }

  private checkStoreWritable(): void {
    if (this.storeError !== undefined) throw this.fencedError();
    if (this.closing) throw new BorealisError("SHUTTING_DOWN", "storage node is shutting down");
  }

  private withStoreLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.storeLock.then(fn, fn);
    this.storeLock = run.catch(() => {});
    return run;
  }

  /**
   * A page-store commit. A failure fences the node like a failed fsync (the store's fsync is as
   * suspect as ours), and is rethrown as STORAGE_FENCED.
   */
  private async commitStore(ops: readonly PageStoreOp[]): Promise<void> {
    if (this.storeError !== undefined) throw this.fencedError();
    try {
      await this.store.commit(ops);
    } catch (e) {
      if (e instanceof BorealisError && e.code === "SHUTTING_DOWN") throw e;
      this.storeError = e instanceof Error ? e : new Error(String(e));
      this.log.error("page-store-fenced", { error: this.storeError });
      throw this.fencedError();
    }
  }

  private mutate<T>(segment: Segment, fn: () => T): T {
    const before = segment.heldBytes;
    try {
      return fn();
    } finally {
      this.unsortedBytesTotal += segment.heldBytes - before;
      assert(this.unsortedBytesTotal >= 0, "unsorted bytes never go negative");
    }
  }

  private release(records: readonly HeldRecord[]): void {
    if (records.length === 0) return;
    const perFile = new Map<number, number>();
    for (const h of records) perFile.set(h.fileSeq, (perFile.get(h.fileSeq) ?? 0) + 1);
    for (const [seq, n] of perFile) this.hotLog.dropRefs(seq, n);
  }

  private scheduleBackground(delayMs: number): void {
    if (this.config.backgroundWork === false || this.closing || this.backgroundTimer !== undefined) return;
    if (this.backgroundRun !== undefined) {
      this.backgroundKicked = true;
      return;
    }
    this.backgroundTimer = this.env.clock.setTimer(delayMs, () => {
      this.backgroundTimer = undefined;
      this.backgroundKicked = false;
      this.backgroundRun = (async () => {
        let more = false;
        try {
          more = await this.materializer.runSlice(this.config.backgroundSliceMs ?? 10);
        } finally {
          this.backgroundRun = undefined;
        }
        // Idle means no timer at all: the next write schedules work again.
        if (more || this.backgroundKicked) this.scheduleBackground(this.config.backgroundPauseMs ?? 1);
        else {
          // Only small sorts are left: come back when the oldest of them is due.
          const due = this.materializer.nextDeferredMs();
          if (due !== undefined) this.scheduleBackground(due + 1);
        }
      })();
    });
  }
}

/** The annulment list a setEpoch or annul request carries, bounded (each entry is checked by `adopt`). */
function annulmentsOf(request: Extract<Request, { type: "setEpoch" | "annul" }>): readonly Annulment[] {
  if (request.annulments.length > MAX_ANNULMENTS) {
    throw new BorealisError("INVALID_ARGUMENT", `${request.annulments.length} annulments exceed the limit of ${MAX_ANNULMENTS}`);
  }
  return request.annulments;
}
