/**
 * The shipper against segments that missed this writer's recovery (ARCHITECTURE D7, invariant 8):
 * fake segments with just the epoch rules of `src/storage/segment.ts` — `getSegmentState` answers at
 * any newer epoch, writes are refused (EPOCH_NOT_ADOPTED) until `annul` made the segment writable at
 * the writer's epoch.
 *
 * Regression: the shipper's probe used to trust `getSegmentState` and never sent `annul`, so a
 * segment that was down during a recovery (or took its fence but not its annulment) was refused every
 * write forever, probe and write alternating without pause, and the PG ran on fewer copies for good.
 * The storage cluster test `test/storage-cluster/rejoin-after-recovery.test.ts` shows the same with
 * real processes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { BorealisError } from "../../src/core/errors.js";
import { Epoch, Lsn, NodeId, PageNo, PgId, VolumeId, type Epochs } from "../../src/core/types.js";
import { realEnv, silentLogger } from "../../src/env/real.js";
import { PgShipper, type ShipperHost } from "../../src/compute/volume/pg-shipper.js";
import type { Annulment, Request, SegmentGeometry, SegmentState } from "../../src/wire/messages.js";
import { encodeRecord, RecordFlag, type EncodedRecord } from "../../src/wire/record.js";
import type { StorageClient } from "../../src/wire/storage-client.js";

const EPOCH = Epoch(3);
const ANNULMENTS: readonly Annulment[] = [{ epoch: Epoch(2), aboveLsn: Lsn(5) }, { epoch: EPOCH, aboveLsn: Lsn(10) }];
const geometry: SegmentGeometry = { volumeId: VolumeId("v"), pgId: PgId(0), firstPage: PageNo(1), pageCount: 8, pageSize: 4096 };

/** A segment reduced to its epoch rules and SCL. */
class FakeSegment {
  readonly requests: string[] = [];
  scl = Lsn(10);
  /** A conflict no annulment cures (a broken segment): every write is refused. */
  conflict = false;

  constructor(public fence: Epoch, public writable: Epoch) {}

  asClient(): StorageClient {
    return { request: (req: Request) => this.request(req) } as unknown as StorageClient;
  }

  private state(): SegmentState {
    return {
      geometry, epochs: { volumeEpoch: this.fence, membershipEpoch: Epoch(1) }, scl: this.scl, highestLsn: this.scl,
      knownVdl: Lsn(10), materializedLsn: Lsn(0), retentionLsn: Lsn(0), highestPageNo: PageNo(1),
    };
  }

  private async request(req: Request): Promise<unknown> {
    this.requests.push(req.type);
    await new Promise((resolve) => setImmediate(resolve));
    const epochs = (req as { epochs?: Epochs }).epochs;
    if (epochs !== undefined && epochs.volumeEpoch < this.fence) throw new BorealisError("STALE_VOLUME_EPOCH", "stale");
    switch (req.type) {
      case "getSegmentState":
        return { type: "segmentState", state: this.state() };
      case "annul":
        this.fence = req.epochs.volumeEpoch;
        if (req.annulments.some((a) => a.epoch === req.epochs.volumeEpoch)) this.writable = req.epochs.volumeEpoch;
        return { type: "segmentState", state: this.state() };
      case "writeBatch": {
        if (req.epochs.volumeEpoch !== this.fence || this.writable !== this.fence || this.conflict) {
          throw new BorealisError("EPOCH_NOT_ADOPTED", `fence ${this.fence}, writable ${this.writable}`);
        }
        for (const r of req.records) if (r.prevLsnInSegment === this.scl) this.scl = r.lsn;
        return { type: "writeAck", scl: this.scl };
      }
      default:
        throw new BorealisError("INTERNAL", `unexpected ${req.type}`);
    }
  }
}

function harness(odd: FakeSegment) {
  const acks = new Map<string, Lsn>();
  let last = Lsn(10);
  const host: ShipperHost = {
    env: realEnv({ log: silentLogger }),
    log: silentLogger,
    epochs: () => ({ volumeEpoch: EPOCH, membershipEpoch: Epoch(1) }),
    writerVdl: () => Lsn(10),
    annulments: () => ANNULMENTS,
    onAck: (_pg, member, scl) => { acks.set(member, scl); },
    pgcl: () => Lsn(10),
    lastLsnInPg: () => last,
    onFenced: (e) => { throw e; },
  };
  const segments = [odd, ...Array.from({ length: 5 }, () => new FakeSegment(EPOCH, EPOCH))];
  const shipper = new PgShipper(host, geometry, segments.map((s, i) => ({ nodeId: NodeId(`n${i + 1}`), client: s.asClient() })), { retryInitialMs: 20, retryMaxMs: 1000 });
  const push = (lsn: number) => {
    const r: EncodedRecord = encodeRecord({
      lsn: Lsn(lsn), epoch: EPOCH, pageNo: PageNo(1), prevLsnInSegment: last, prevLsnOfPage: Lsn(0), prevLsnInVolume: Lsn(lsn - 1),
      flags: RecordFlag.CPL | RecordFlag.FULL_IMAGE, payload: new Uint8Array(4096),
    }, geometry);
    shipper.push([r]);
    last = Lsn(lsn);
  };
  return { shipper, acks, push };
}

async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!pred() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return pred();
}

test("a segment that missed the whole recovery (older epoch) is annulled by the probe and takes writes", async () => {
  const odd = new FakeSegment(Epoch(2), Epoch(2));
  const { shipper, acks, push } = harness(odd);
  push(20000001);
  assert.ok(await until(() => acks.get("n1") === 20000001, 5000), `n1 acknowledged the record (${odd.requests.length} requests: ${odd.requests.slice(0, 12).join(", ")} …)`);
  assert.equal(odd.writable, EPOCH);
  assert.ok(odd.requests.includes("annul"));
  shipper.stop();
});

test("a segment with this epoch's fence but not its annulment is annulled after its first refused write", async () => {
  const odd = new FakeSegment(EPOCH, Epoch(2));
  const { shipper, acks, push } = harness(odd);
  push(20000001);
  assert.ok(await until(() => acks.get("n1") === 20000001, 5000), `n1 acknowledged the record (${odd.requests.length} requests: ${odd.requests.slice(0, 12).join(", ")} …)`);
  assert.equal(odd.writable, EPOCH);
  shipper.stop();
});

test("a refusal that annulment does not cure backs off instead of spinning", async () => {
  const odd = new FakeSegment(EPOCH, EPOCH);
  odd.conflict = true;
  const { shipper, acks, push } = harness(odd);
  push(20000001);
  assert.ok(await until(() => acks.get("n2") === 20000001, 5000), "the healthy segments acknowledge");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  shipper.stop();
  assert.ok(!acks.has("n1") || acks.get("n1")! < 20000001, "the broken segment never acknowledges");
  assert.ok(odd.requests.includes("annul"), "annul was tried");
  assert.ok(odd.requests.length < 60, `${odd.requests.length} requests to the broken segment in about a second: it backs off`);
});
