/**
 * The control plane service (DESIGN.md component 4; ARCHITECTURE.md D9): the metadata Aurora keeps in
 * DynamoDB, on top of a `KvStore`.
 *
 * It owns
 * - the storage-node registry: id, AZ and storage address (persisted), and liveness (in memory);
 * - volumes: page size, PG geometry, the placement of every PG's six segments, the volume epoch
 *   (compare-and-set, invariant 8), each PG's membership epoch (invariant 11), the geometry epoch;
 * - the writer record: which endpoint serves the volume, under which epoch.
 *
 * It is never on the data path: writers and storage nodes talk to each other directly and only ask the
 * control plane where things are and who is in charge.
 *
 * Liveness is soft state on purpose. A heartbeat per node per second written to the store would be the
 * store's only real load and would rewrite the embedded store's file several times a second for nothing
 * durable: after a restart, every live node heartbeats again within one interval. (On etcd, liveness
 * will be a lease.) Liveness uses the monotonic clock, so wall-clock jumps cannot kill or revive nodes.
 *
 * Every read-modify-write is a compare-and-set on the key's revision, retried from a fresh read a
 * bounded number of times, so two control-plane processes on one shared store cannot lose updates.
 *
 * Keys: `nodes/<nodeId>` and `volumes/<volumeId>`, each one JSON document. One document per volume means
 * one compare-and-set covers the epoch, the placement and the writer together.
 */
import type { Env } from "../env/env.js";
import { assert, isSafeUint } from "../core/assert.js";
import { BorealisError, isBorealisError } from "../core/errors.js";
import { Az, Epoch, NodeId, PageNo, PgId, VolumeId } from "../core/types.js";
import type { SegmentGeometry } from "../wire/messages.js";
import type { KvStore } from "./kv-store.js";
import {
  API_LIMITS, DEFAULT_HEARTBEAT_TIMEOUT_MS, parseCreateVolumeRequest, parseEpoch, parseHeartbeatRequest,
  parseRecordRecoveryRequest, parseSetWriterRequest, parseVolumeId,
  type ControlPlaneApi, type CreateVolumeRequest, type HeartbeatRequest, type HeartbeatResponse,
  type ProtectionGroup, type RecordRecoveryRequest, type RecoveryRecord, type SetWriterRequest, type StorageNodeInfo, type Volume, type WriterRecord,
} from "./api.js";
import { checkPlacement, placeGrowingProtectionGroup, placeProtectionGroups, type GrowthCandidate, type SegmentPlacement } from "./placement.js";

const NODE_PREFIX = "nodes/";
const VOLUME_PREFIX = "volumes/";
/** Compare-and-set attempts before giving up with CONFLICT; contention here is rare and short. */
const MAX_CAS_ATTEMPTS = 16;
const DOC_VERSION = 1;

export interface ControlPlaneOptions {
  /** A node whose last heartbeat is older than this is not alive. Default 3000. */
  readonly heartbeatTimeoutMs?: number;
}

// The stored documents. Addresses are not copied into volumes: a node that moves keeps its segments.
interface NodeDoc {
  readonly v: number;
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly address: string;
  readonly registeredAtWallMs: number;
}

interface PgDoc {
  readonly pgId: PgId;
  readonly membershipEpoch: Epoch;
  readonly segments: readonly SegmentPlacement[];
}

interface VolumeDoc {
  readonly v: number;
  readonly volumeId: VolumeId;
  readonly pageSize: number;
  readonly pgPages: number;
  readonly volumeEpoch: Epoch;
  readonly geometryEpoch: number;
  readonly createdAtWallMs: number;
  readonly pgs: readonly PgDoc[];
  readonly writer: WriterRecord | null;
  /** Absent in documents written before recoveries were recorded. */
  readonly recoveries?: readonly RecoveryRecord[];
}

/** The pages protection group `pgId` covers: [1 + g*pgPages, (g+1)*pgPages] (pages count from 1). */
export function pgGeometry(volumeId: VolumeId, pgId: PgId, pgPages: number, pageSize: number): SegmentGeometry {
  assert(isSafeUint(pgId) && pgPages >= 1, "pgGeometry: bad pgId or pgPages");
  const firstPage = 1 + pgId * pgPages;
  assert(Number.isSafeInteger(firstPage + pgPages), "pgGeometry: page numbers stay safe integers");
  return { volumeId, pgId, firstPage: PageNo(firstPage), pageCount: pgPages, pageSize };
}

export class ControlPlane implements ControlPlaneApi {
  readonly heartbeatTimeoutMs: number;
  /** Monotonic time of each registered node's last heartbeat; bounded by the registry's size. */
  private readonly lastHeartbeatMs = new Map<NodeId, number>();

  constructor(private readonly env: Env, private readonly kv: KvStore, options: ControlPlaneOptions = {}) {
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    assert(isSafeUint(this.heartbeatTimeoutMs) && this.heartbeatTimeoutMs > 0, "heartbeat timeout must be positive");
  }

  // --------------------------------------------------------------------------------------- nodes

  async heartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    const { nodeId, az, address } = parseHeartbeatRequest(request);
    for (let attempt = 1; ; attempt++) {
      const entry = await this.kv.get(NODE_PREFIX + nodeId);
      const doc = entry === null ? null : parseDoc<NodeDoc>(entry.value, entry.key);
      if (doc !== null && doc.az !== az) {
        // Segments were placed by AZ: a node that changes AZ would silently break the 2-per-AZ rule.
        throw new BorealisError("INVALID_ARGUMENT",
          `node ${nodeId} is registered in AZ ${doc.az}; it cannot rejoin in AZ ${az} (use a new node id)`);
      }
      if (doc !== null && doc.address === address) break;
      if (doc === null && (await this.kv.list(NODE_PREFIX, { limit: API_LIMITS.maxNodes })).length >= API_LIMITS.maxNodes) {
        throw new BorealisError("INVALID_ARGUMENT", `the registry already holds ${API_LIMITS.maxNodes} storage nodes`);
      }
      const next: NodeDoc = {
        v: DOC_VERSION, nodeId, az, address, registeredAtWallMs: doc?.registeredAtWallMs ?? this.env.clock.wallMs(),
      };
      try {
        await this.kv.put(NODE_PREFIX + nodeId, JSON.stringify(next), { expectRevision: entry?.revision ?? "absent" });
        this.env.log.info(doc === null ? "node-registered" : "node-address-changed", { nodeId, az, address, was: doc?.address });
        break;
      } catch (e) {
        if (!isBorealisError(e, "CONFLICT") || attempt >= MAX_CAS_ATTEMPTS) throw e;
      }
    }
    const wasAlive = this.isAlive(nodeId);
    this.lastHeartbeatMs.set(nodeId, this.env.clock.nowMs());
    if (!wasAlive) this.env.log.info("node-alive", { nodeId, az, address });
    const node = (await this.listNodes()).find((n) => n.nodeId === nodeId);
    assert(node !== undefined && node.alive, "a node is alive right after its heartbeat");
    return { node, heartbeatTimeoutMs: this.heartbeatTimeoutMs };
  }

  async listNodes(): Promise<StorageNodeInfo[]> {
    const entries = await this.kv.list(NODE_PREFIX, { limit: API_LIMITS.maxNodes });
    const load = segmentCounts(await this.volumeDocs());
    const now = this.env.clock.nowMs();
    return entries.map(({ key, value }) => {
      const doc = parseDoc<NodeDoc>(value, key);
      const last = this.lastHeartbeatMs.get(doc.nodeId);
      return {
        nodeId: doc.nodeId,
        az: doc.az,
        address: doc.address,
        alive: this.isAlive(doc.nodeId),
        lastHeartbeatAgeMs: last === undefined ? null : Math.max(0, Math.round(now - last)),
        segmentCount: load.get(doc.nodeId) ?? 0,
        registeredAtWallMs: doc.registeredAtWallMs,
      };
    });
  }

  private isAlive(nodeId: NodeId): boolean {
    const last = this.lastHeartbeatMs.get(nodeId);
    return last !== undefined && this.env.clock.nowMs() - last <= this.heartbeatTimeoutMs;
  }

  // ------------------------------------------------------------------------------------- volumes

  async listVolumes(): Promise<Volume[]> {
    const docs = await this.volumeDocs();
    const addresses = await this.nodeAddresses();
    return docs.map((d) => toVolume(d, addresses));
  }

  async getVolume(volumeId: VolumeId): Promise<Volume> {
    const { doc } = await this.readVolume(parseVolumeId(volumeId));
    return toVolume(doc, await this.nodeAddresses());
  }

  async createVolume(request: CreateVolumeRequest): Promise<Volume> {
    const { volumeId, pageSize, pgPages, pgCount } = parseCreateVolumeRequest(request);
    const key = VOLUME_PREFIX + volumeId;
    if ((await this.kv.get(key)) !== null) throw alreadyExists(volumeId);
    const docs = await this.volumeDocs();
    if (docs.length >= API_LIMITS.maxVolumes) {
      throw new BorealisError("INVALID_ARGUMENT", `the control plane already holds ${API_LIMITS.maxVolumes} volumes`);
    }
    const placements = placeProtectionGroups(await this.candidates(docs), pgCount);
    const doc: VolumeDoc = {
      v: DOC_VERSION, volumeId, pageSize, pgPages,
      volumeEpoch: Epoch(1), geometryEpoch: 1, createdAtWallMs: this.env.clock.wallMs(),
      pgs: placements.map((segments, g) => ({ pgId: PgId(g), membershipEpoch: Epoch(1), segments })),
      writer: null,
    };
    checkVolumeDoc(doc);
    try {
      await this.kv.put(key, JSON.stringify(doc), { expectRevision: "absent" });
    } catch (e) {
      throw isBorealisError(e, "CONFLICT") ? alreadyExists(volumeId) : e;
    }
    this.env.log.info("volume-created", { volumeId, pageSize, pgPages, pgCount });
    return toVolume(doc, await this.nodeAddresses());
  }

  async addProtectionGroup(volumeId: VolumeId): Promise<Volume> {
    const id = parseVolumeId(volumeId);
    const doc = await this.updateVolume(id, async (current, all) => {
      if (current.pgs.length >= API_LIMITS.maxPgsPerVolume) {
        throw new BorealisError("INVALID_ARGUMENT", `volume ${id} already has ${API_LIMITS.maxPgsPerVolume} protection groups`);
      }
      // Growth must not stop at a dead node while the volume still has write quorums (placement.ts).
      const segments = placeGrowingProtectionGroup(await this.candidates(all, { includeDead: true }));
      const pg: PgDoc = { pgId: PgId(current.pgs.length), membershipEpoch: Epoch(1), segments };
      return { ...current, geometryEpoch: current.geometryEpoch + 1, pgs: [...current.pgs, pg] };
    });
    this.env.log.info("protection-group-added", { volumeId: id, pgId: doc.pgs.length - 1, geometryEpoch: doc.geometryEpoch });
    return toVolume(doc, await this.nodeAddresses());
  }

  async bumpVolumeEpoch(volumeId: VolumeId, expected: Epoch): Promise<Epoch> {
    const id = parseVolumeId(volumeId);
    const want = parseEpoch(expected, "expected epoch");
    const doc = await this.updateVolume(id, async (current) => {
      if (current.volumeEpoch !== want) {
        throw new BorealisError("CONFLICT",
          `volume ${id} is at epoch ${current.volumeEpoch}, not ${want}: another recovery got there first`,
          { epoch: current.volumeEpoch });
      }
      return { ...current, volumeEpoch: Epoch(current.volumeEpoch + 1) };
    });
    assert(doc.volumeEpoch === want + 1, 8, "the volume epoch moves up by exactly one per bump");
    this.env.log.info("volume-epoch-bumped", { volumeId: id, volumeEpoch: doc.volumeEpoch });
    return doc.volumeEpoch;
  }

  async setWriter(request: SetWriterRequest): Promise<Volume> {
    const { volumeId, endpoint, epoch } = parseSetWriterRequest(request);
    const doc = await this.updateVolume(volumeId, async (current) => {
      if (epoch < current.volumeEpoch) {
        throw new BorealisError("WRITER_FENCED",
          `volume ${volumeId} is at epoch ${current.volumeEpoch}; a writer of epoch ${epoch} has been fenced`,
          { epoch: current.volumeEpoch });
      }
      if (epoch > current.volumeEpoch) {
        throw new BorealisError("INVALID_ARGUMENT",
          `volume ${volumeId} is at epoch ${current.volumeEpoch}; bump the volume epoch before claiming epoch ${epoch}`,
          { epoch: current.volumeEpoch });
      }
      return { ...current, writer: { endpoint, epoch, updatedAtWallMs: this.env.clock.wallMs() } };
    });
    this.env.log.info("writer-set", { volumeId, endpoint, epoch });
    return toVolume(doc, await this.nodeAddresses());
  }

  async recordRecovery(volumeId: VolumeId, request: RecordRecoveryRequest): Promise<Volume> {
    const id = parseVolumeId(volumeId);
    const r = parseRecordRecoveryRequest(request);
    const doc = await this.updateVolume(id, async (current) => {
      if (r.epoch < current.volumeEpoch) {
        throw new BorealisError("WRITER_FENCED",
          `volume ${id} is at epoch ${current.volumeEpoch}; the recovery of epoch ${r.epoch} was overtaken`, { epoch: current.volumeEpoch });
      }
      if (r.epoch > current.volumeEpoch) {
        throw new BorealisError("INVALID_ARGUMENT", `volume ${id} is at epoch ${current.volumeEpoch}, not ${r.epoch}`, { epoch: current.volumeEpoch });
      }
      const recoveries = current.recoveries ?? [];
      const last = recoveries[recoveries.length - 1];
      if (last !== undefined && last.epoch >= r.epoch) {
        throw new BorealisError("CONFLICT", `volume ${id} already recorded the recovery of epoch ${last.epoch}`);
      }
      if (recoveries.length >= API_LIMITS.maxRecoveries) {
        throw new BorealisError("INVALID_ARGUMENT", `volume ${id} has recorded ${recoveries.length} recoveries, the most it keeps`);
      }
      return { ...current, recoveries: [...recoveries, { ...r, atWallMs: this.env.clock.wallMs() }] };
    });
    this.env.log.info("recovery-recorded", { volumeId: id, epoch: r.epoch, vdl: r.vdl, truncateThrough: r.truncateThrough });
    return toVolume(doc, await this.nodeAddresses());
  }

  // ------------------------------------------------------------------------------------- private

  private async readVolume(volumeId: VolumeId): Promise<{ doc: VolumeDoc; revision: number }> {
    const entry = await this.kv.get(VOLUME_PREFIX + volumeId);
    if (entry === null) throw new BorealisError("VOLUME_NOT_FOUND", `no volume "${volumeId}"`);
    return { doc: parseDoc<VolumeDoc>(entry.value, entry.key), revision: entry.revision };
  }

  /**
   * Read-modify-write of one volume document. `change` sees the current document (and every volume, for
   * load) and returns the next one, or throws to refuse; a lost compare-and-set race re-reads and calls
   * it again, so its decision is always made on the version it replaces.
   */
  private async updateVolume(
    volumeId: VolumeId,
    change: (current: VolumeDoc, all: readonly VolumeDoc[]) => Promise<VolumeDoc>,
  ): Promise<VolumeDoc> {
    for (let attempt = 1; ; attempt++) {
      const { doc, revision } = await this.readVolume(volumeId);
      const next = await change(doc, await this.volumeDocs());
      checkVolumeDoc(next);
      assert(next.volumeEpoch >= doc.volumeEpoch, 8, "a volume epoch never goes down");
      try {
        await this.kv.put(VOLUME_PREFIX + volumeId, JSON.stringify(next), { expectRevision: revision });
        return next;
      } catch (e) {
        if (!isBorealisError(e, "CONFLICT") || attempt >= MAX_CAS_ATTEMPTS) throw e;
      }
    }
  }

  private async volumeDocs(): Promise<VolumeDoc[]> {
    const entries = await this.kv.list(VOLUME_PREFIX, { limit: API_LIMITS.maxVolumes });
    return entries.map(({ key, value }) => parseDoc<VolumeDoc>(value, key));
  }

  private async nodeAddresses(): Promise<Map<NodeId, string>> {
    const entries = await this.kv.list(NODE_PREFIX, { limit: API_LIMITS.maxNodes });
    return new Map(entries.map(({ key, value }) => {
      const d = parseDoc<NodeDoc>(value, key);
      return [d.nodeId, d.address];
    }));
  }

  /** Live nodes (and, with `includeDead`, the registered dead ones) with their current load: who may receive new segments. */
  private async candidates(docs: readonly VolumeDoc[], options: { includeDead?: boolean } = {}): Promise<GrowthCandidate[]> {
    const load = segmentCounts(docs);
    const entries = await this.kv.list(NODE_PREFIX, { limit: API_LIMITS.maxNodes });
    const out: GrowthCandidate[] = [];
    for (const { key, value } of entries) {
      const d = parseDoc<NodeDoc>(value, key);
      const alive = this.isAlive(d.nodeId);
      if (alive || options.includeDead === true) out.push({ nodeId: d.nodeId, az: d.az, load: load.get(d.nodeId) ?? 0, alive });
    }
    return out;
  }
}

function alreadyExists(volumeId: VolumeId): BorealisError {
  return new BorealisError("CONFLICT", `volume "${volumeId}" already exists`);
}

function segmentCounts(docs: readonly VolumeDoc[]): Map<NodeId, number> {
  const counts = new Map<NodeId, number>();
  for (const d of docs) {
    for (const pg of d.pgs) for (const s of pg.segments) counts.set(s.nodeId, (counts.get(s.nodeId) ?? 0) + 1);
  }
  return counts;
}

function toVolume(d: VolumeDoc, addresses: ReadonlyMap<NodeId, string>): Volume {
  const pgs: ProtectionGroup[] = d.pgs.map((pg) => ({
    pgId: pg.pgId,
    geometry: pgGeometry(d.volumeId, pg.pgId, d.pgPages, d.pageSize),
    membershipEpoch: pg.membershipEpoch,
    segments: pg.segments.map((s) => ({ nodeId: s.nodeId, az: s.az, address: addresses.get(s.nodeId) ?? null })),
  }));
  return {
    volumeId: d.volumeId, pageSize: d.pageSize, pgPages: d.pgPages, volumeEpoch: d.volumeEpoch,
    geometryEpoch: d.geometryEpoch, createdAtWallMs: d.createdAtWallMs, pgs, writer: d.writer,
    recoveries: d.recoveries ?? [],
  };
}

/** What every stored volume satisfies; checked before each write (positive space). */
function checkVolumeDoc(d: VolumeDoc): void {
  assert(d.v === DOC_VERSION, "volume document version");
  assert(d.pgs.length >= 1 && d.pgs.length <= API_LIMITS.maxPgsPerVolume, "a volume has 1..max protection groups");
  assert(isSafeUint(d.volumeEpoch) && d.volumeEpoch >= 1, 8, "a volume epoch is a positive integer");
  d.pgs.forEach((pg, g) => {
    assert(pg.pgId === g, `protection groups are numbered 0..n-1 without gaps (found ${pg.pgId} at ${g})`);
    assert(isSafeUint(pg.membershipEpoch) && pg.membershipEpoch >= 1, 11, "a membership epoch is a positive integer");
    checkPlacement(pg.segments);
  });
  if (d.writer !== null) assert(d.writer.epoch <= d.volumeEpoch, 8, "the writer's epoch is never above the volume epoch");
}

/** Documents are ours, but a damaged store must be reported, not crash the process. */
function parseDoc<T extends { v: number }>(value: string, key: string): T {
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    throw new BorealisError("CORRUPT_DATA", `control-plane entry ${key} is not JSON`);
  }
  if (doc === null || typeof doc !== "object" || (doc as { v?: unknown }).v !== DOC_VERSION) {
    throw new BorealisError("CORRUPT_DATA", `control-plane entry ${key} has an unknown format`);
  }
  return doc as T;
}
