/**
 * Shared by the storage cluster tests: a real cluster (control plane + six storage-node processes),
 * the production writer-side volume client (`recoverVolume` → `VolumeWriter`) as the test client,
 * a commit stream that records what was acknowledged, and the checks that compare what storage
 * serves against the synthetic volume's model — through the writer, and segment by segment.
 */
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { createWriteStream } from "node:fs";
import * as path from "node:path";
import { isBorealisError } from "../../src/core/errors.js";
import { Lsn, PageNo, PgId, VolumeId, type Epoch, type Epochs, type SegmentKey } from "../../src/core/types.js";
import type { Volume } from "../../src/control-plane/api.js";
import type { Env } from "../../src/env/env.js";
import { consoleLogger, realEnv } from "../../src/env/real.js";
import { NodePool } from "../../src/compute/volume/node-pool.js";
import { recoverVolume, type RecoveredVolume } from "../../src/compute/volume/recovery.js";
import { VolumeWriter } from "../../src/compute/volume/volume-writer.js";
import type { PgShipperOptions } from "../../src/compute/volume/pg-shipper.js";
import { ProcessCluster, type StorageProcess } from "../../src/testing/process-cluster.js";
import type { SyntheticVolume } from "../../src/testing/synthetic-volume.js";
import { StorageClient } from "../../src/wire/storage-client.js";
import type { EncodedRecord } from "../../src/wire/record.js";

export const PG_PAGES = 8;
export const PG_COUNT = 3;

/**
 * A cluster of six storage nodes (no writer), destroyed after the test; its directory (process logs,
 * the test client's logs) is kept, and printed, when BOREALIS_KEEP_CLUSTER=1.
 */
export async function startCluster(t: TestContext): Promise<ProcessCluster> {
  const cluster = await ProcessCluster.start({ writer: false });
  const keep = process.env["BOREALIS_KEEP_CLUSTER"] === "1";
  if (keep) t.diagnostic(`cluster directory (kept): ${cluster.dir}`);
  t.after(() => cluster.destroy({ keepDir: keep }));
  return cluster;
}

/** An env whose log goes to a file beside the cluster's process logs (read it when a test fails). */
export function testEnv(cluster: ProcessCluster, name: string): Env {
  const out = createWriteStream(path.join(cluster.dir, "logs", `${name}.log`), { flags: "a" });
  return realEnv({ log: consoleLogger({ level: "info", write: (line) => out.write(line + "\n") }) });
}

/** Creates a volume of PG_COUNT small PGs, retrying while the storage nodes are still registering. */
export async function createVolume(cluster: ProcessCluster, volumeId: string): Promise<Volume> {
  const deadline = performance.now() + 30_000;
  for (let attempt = 0; ; attempt++) {
    try {
      return await cluster.api.createVolume({ volumeId: VolumeId(volumeId), pgPages: PG_PAGES, pgCount: PG_COUNT });
    } catch (e) {
      if (!isBorealisError(e, "PLACEMENT_IMPOSSIBLE") || performance.now() > deadline) throw e;
      await sleep(Math.min(500, 25 * 2 ** Math.min(attempt, 5)));
    }
  }
}

/** One writer incarnation: its own pool of connections, a recovery, and the volume client. */
export interface TestWriter {
  readonly recovered: RecoveredVolume;
  readonly vw: VolumeWriter;
  readonly env: Env;
  close(): void;
}

/** What a (re)starting writer does before it serves: recover (invariant 8), then start the volume client. */
export async function openWriter(cluster: ProcessCluster, volumeId: string, name: string, shipper?: PgShipperOptions): Promise<TestWriter> {
  const env = testEnv(cluster, name);
  const pool = new NodePool(env, { senderId: name });
  try {
    const recovered = await recoverVolume({ env, controlPlane: cluster.api, pool, volumeId: VolumeId(volumeId), timeoutMs: 60_000 });
    const vw = new VolumeWriter({
      env, pool, controlPlane: cluster.api, volume: recovered.volume, epoch: recovered.epoch,
      annulments: recovered.annulments, trackerStart: recovered.trackerStart,
      // Commits wait out a lost write quorum in these tests; they must not time out meanwhile.
      commitTimeoutMs: 300_000, readTimeoutMs: 30_000,
      ...(shipper !== undefined ? { shipper } : {}),
    });
    return { recovered, vw, env, close: () => { vw.close(); pool.close(); } };
  } catch (e) {
    pool.close();
    throw e;
  }
}

/**
 * Submits synthetic MTRs to a writer with at most `window` commits outstanding, and counts a commit as
 * acknowledged only once `whenDurable(commitLsn)` resolved (4/6 on every PG it touched, VDL past it).
 */
export class CommitStream {
  submitted = 0;
  acked = 0;
  /** Highest acknowledged commit LSN. */
  maxAcked: Lsn = Lsn(0);
  outstanding = 0;
  /** COMMIT_OUTCOME_UNKNOWN answers (writer closed with commits waiting): neither acked nor failed. */
  unknown = 0;
  readonly failures: unknown[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly vw: VolumeWriter, private readonly model: SyntheticVolume, private readonly window = 16) {}

  start(): void {
    assert.ok(!this.running, "stream already running");
    this.running = true;
    this.loop = this.run();
  }

  /** Stops submitting (commits already submitted stay outstanding). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      // Everything submitted in one turn leaves in one batch per segment.
      while (this.running && this.outstanding < this.window) this.submitOne();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = undefined;
    }
  }

  private submitOne(): void {
    const mtr = this.model.nextMtr();
    this.vw.submit(mtr);
    this.submitted++;
    this.outstanding++;
    const lsn = mtr.commitLsn;
    this.vw.whenDurable(lsn).then(() => {
      // Invariant 5: acknowledgements go out in LSN order.
      if (lsn <= this.maxAcked) this.failures.push(new Error(`commit ${lsn} acknowledged after ${this.maxAcked}`));
      this.maxAcked = lsn;
      this.acked++;
      this.outstanding--;
      this.wake?.();
    }, (e: unknown) => {
      if (isBorealisError(e, "COMMIT_OUTCOME_UNKNOWN")) this.unknown++;
      else this.failures.push(e);
      this.outstanding--;
      this.wake?.();
    });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `pred` every 20 ms until it holds; fails with `what()` after `timeoutMs`. */
export async function waitFor(pred: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(20);
  }
}

/** Waits until every segment of every PG holds the PG's last record (the restarted ones caught up). */
export async function waitFullyReplicated(vw: VolumeWriter, timeoutMs: number): Promise<void> {
  const lagging = () => vw.status().pgs.flatMap((pg) => pg.segments.filter((s) => s.scl < pg.lastLsn).map((s) => `${pg.pgId}/${s.nodeId}@${s.scl}<${pg.lastLsn} (${s.state}${s.lastError ? `: ${s.lastError}` : ""})`));
  await waitFor(() => lagging().length === 0, timeoutMs, () => `all six segments of every PG to be complete; lagging: ${lagging().join(", ")}`);
}

/** A short status line for diagnostics. */
export function describe(vw: VolumeWriter): string {
  const s = vw.status();
  return `VCL ${s.vcl} VDL ${s.vdl} waiting ${s.waitingCommits} | ` + s.pgs.map((pg) => `PG${pg.pgId} PGCL ${pg.pgcl} last ${pg.lastLsn} [${pg.segments.map((m) => `${m.nodeId}:${m.scl}/${m.state}`).join(" ")}]`).join(" | ");
}

/** Every page of the volume through the writer's read path, at each read point, against the model. */
export async function checkPagesThroughWriter(vw: VolumeWriter, model: SyntheticVolume, readPoints: readonly Lsn[]): Promise<number> {
  let reads = 0;
  for (const rp of readPoints) {
    assert.ok(rp <= vw.vdl(), `read point ${rp} ≤ VDL ${vw.vdl()} (invariant 7)`);
    for (let p = 1; p <= model.pageCount; p++) {
      const got = await vw.readPage(PageNo(p), rp);
      const want = model.pageAt(p, rp);
      assert.equal(got.pageLsn, want.pageLsn, `page ${p} at read point ${rp}: page LSN`);
      assert.ok(Buffer.from(got.bytes).equals(want.bytes), `page ${p} at read point ${rp}: bytes differ from the model`);
      reads++;
    }
  }
  return reads;
}

/** A storage client straight to one node (admin role), bypassing the writer. */
export function directClient(env: Env, node: StorageProcess): StorageClient {
  return new StorageClient(env, { host: "127.0.0.1", port: node.port }, { role: "admin", senderId: "storage-cluster-test", connectTimeoutMs: 5000 });
}

export interface SegmentCheckReport {
  /** (pgId, readPoint) → segments complete there, all of which served every page of the PG as the model has it. */
  readonly complete: Map<string, number>;
  readonly pageReads: number;
}

/**
 * Asks every node directly, for every PG and read point: is your segment complete there (SCL ≥ the
 * PG's last record at or below the read point, from the model)? If so, every page of the PG it serves
 * at that read point must equal the model's bytes and page LSN. Reads run at `epochs` (the current
 * writer's), which a segment serves only once it adopted that epoch's annulment; a segment that has
 * not yet is retried (the writer's shipper is annulling it) for a bounded time.
 */
export async function checkSegmentsDirectly(
  env: Env, cluster: ProcessCluster, volume: Volume, epoch: Epoch, model: SyntheticVolume, readPoints: readonly Lsn[],
): Promise<SegmentCheckReport> {
  const complete = new Map<string, number>();
  let pageReads = 0;
  const clients = new Map(cluster.nodes.map((n) => [n.name, directClient(env, n)]));
  try {
    for (const pg of volume.pgs) {
      const key: SegmentKey = { volumeId: volume.volumeId, pgId: pg.pgId };
      const epochs: Epochs = { volumeEpoch: epoch, membershipEpoch: pg.membershipEpoch };
      for (const seg of pg.segments) {
        const client = clients.get(seg.nodeId)!;
        const state = await client.getSegmentState({ key, epochs });
        for (const rp of readPoints) {
          const minScl = model.lastLsnInPgAt(pg.pgId, rp);
          if (state.scl < minScl) continue;
          for (let i = 0; i < pg.geometry.pageCount; i++) {
            const pageNo = PageNo(pg.geometry.firstPage + i);
            const got = await withRetry(() => client.getPage({ key, epochs, pageNo, readPoint: rp, minScl }), 15_000, "EPOCH_NOT_ADOPTED");
            const want = model.pageAt(pageNo, rp);
            const where = `node ${seg.nodeId} PG ${pg.pgId} page ${pageNo} at read point ${rp} (minScl ${minScl}, SCL ${state.scl})`;
            assert.equal(got.pageLsn, want.pageLsn, `${where}: page LSN`);
            assert.ok(Buffer.from(got.bytes).equals(want.bytes), `${where}: bytes differ from the model`);
            pageReads++;
          }
          const k = `${pg.pgId}@${rp}`;
          complete.set(k, (complete.get(k) ?? 0) + 1);
        }
      }
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
  return { complete, pageReads };
}

/** Retries `fn` while it fails with `code`, for at most `timeoutMs`. */
async function withRetry<T>(fn: () => Promise<T>, timeoutMs: number, code: "EPOCH_NOT_ADOPTED"): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!isBorealisError(e, code) || performance.now() > deadline) throw e;
      await sleep(50);
    }
  }
}

/** Every record a segment holds in (after, upTo], read in chunks (bounded). */
export async function readAllRecords(client: StorageClient, key: SegmentKey, epochs: Epochs, after: Lsn, upTo: Lsn): Promise<{ scl: Lsn; records: EncodedRecord[] }> {
  const records: EncodedRecord[] = [];
  let cursor = after;
  let scl = Lsn(0);
  for (let round = 0; round < 10_000; round++) {
    const chunk = await client.readRecords({ key, epochs, afterLsn: cursor, upToLsn: upTo, maxBytes: 1 << 20 });
    scl = chunk.scl;
    records.push(...chunk.records);
    if (!chunk.more || chunk.records.length === 0) return { scl, records };
    cursor = chunk.records[chunk.records.length - 1]!.lsn;
  }
  assert.fail(`readRecords of ${key.volumeId}/${key.pgId} did not finish`);
}

/** The record fields that must survive byte for byte. */
export function sameRecord(a: EncodedRecord, b: { readonly lsn: Lsn; readonly epoch: Epoch; readonly pageNo: PageNo; readonly prevLsnInSegment: Lsn; readonly prevLsnOfPage: Lsn; readonly prevLsnInVolume: Lsn; readonly flags: number; readonly payload: Uint8Array }): boolean {
  return a.lsn === b.lsn && a.epoch === b.epoch && a.pageNo === b.pageNo && a.prevLsnInSegment === b.prevLsnInSegment &&
    a.prevLsnOfPage === b.prevLsnOfPage && a.prevLsnInVolume === b.prevLsnInVolume && a.flags === b.flags &&
    Buffer.from(a.payload).equals(b.payload);
}

/** Read points in (min, max]: the given ones, `extra` random CPLs of the model, and `max`; deduplicated, ascending. */
export function pickReadPoints(model: SyntheticVolume, fixed: readonly Lsn[], min: Lsn, max: Lsn, extra: number, rand: () => number): Lsn[] {
  const cpls = model.cpls.filter((c) => c > min && c <= max);
  const out = new Set<number>(fixed.filter((x) => x > min && x <= max));
  for (let i = 0; i < extra && cpls.length > 0; i++) out.add(cpls[Math.floor(rand() * cpls.length)]!);
  out.add(max);
  return [...out].sort((a, b) => a - b).map(Lsn);
}

export { PgId };
