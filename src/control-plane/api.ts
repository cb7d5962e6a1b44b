/**
 * The control plane's API: the shapes it serves and `ControlPlaneApi`, the one interface implemented
 * both by the service itself (`ControlPlane`, in process) and by its HTTP client (`ControlPlaneClient`).
 * Code that needs the control plane (the storage node's heartbeats, `borealis status`, later the writer)
 * takes a `ControlPlaneApi`, so the simulator can hand it the in-process service and production the
 * client without either side knowing.
 *
 * Also the validators for everything that arrives from outside (HTTP bodies, CLI flags): an invalid
 * field is an operating error (`INVALID_ARGUMENT`), never an assertion.
 */
import { BorealisError } from "../core/errors.js";
import { isSafeUint } from "../core/assert.js";
import { Az, Epoch, NodeId, VolumeId, parseHostPort, type Lsn, type PgId } from "../core/types.js";
import type { SegmentGeometry } from "../wire/messages.js";

// ---------------------------------------------------------------------------------------------- shapes

export interface StorageNodeInfo {
  readonly nodeId: NodeId;
  readonly az: Az;
  /** "host:port" of the node's storage protocol listener, as the node advertised it. */
  readonly address: string;
  /** A heartbeat arrived within the heartbeat timeout. */
  readonly alive: boolean;
  /** Milliseconds since the last heartbeat this control-plane process received; null if none yet. */
  readonly lastHeartbeatAgeMs: number | null;
  /** Segments placed on this node, across all volumes. */
  readonly segmentCount: number;
  readonly registeredAtWallMs: number;
}

export interface HeartbeatRequest {
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly address: string;
}

export interface HeartbeatResponse {
  readonly node: StorageNodeInfo;
  /** A node not heard from for this long is considered dead; heartbeat well within it. */
  readonly heartbeatTimeoutMs: number;
}

/** Where one segment lives. `address` is the hosting node's current address (null if unregistered). */
export interface SegmentLocation {
  readonly nodeId: NodeId;
  readonly az: Az;
  readonly address: string | null;
}

export interface ProtectionGroup {
  readonly pgId: PgId;
  readonly geometry: SegmentGeometry;
  /** Bumped by each quorum-set change of this PG (invariant 11). Starts at 1. */
  readonly membershipEpoch: Epoch;
  /** Six segments, two in each of three AZs (placement.ts). */
  readonly segments: readonly SegmentLocation[];
}

export interface WriterRecord {
  /** Where clients reach the writer (its Hrana endpoint URL). */
  readonly endpoint: string;
  /** The volume epoch the writer recovered under; equal to the volume's epoch while it is current. */
  readonly epoch: Epoch;
  readonly updatedAtWallMs: number;
}

/**
 * One completed writer recovery (invariant 8): the epoch it started, the VDL it recovered, and the end
 * of its truncation range. A segment that missed a recovery must apply its annulment before it adopts
 * any later epoch, so every writer sends the whole list (src/compute/volume/recovery.ts).
 */
export interface RecoveryRecord {
  readonly epoch: Epoch;
  readonly vdl: Lsn;
  readonly truncateThrough: Lsn;
  readonly atWallMs: number;
}

export interface RecordRecoveryRequest {
  readonly epoch: Epoch;
  readonly vdl: Lsn;
  readonly truncateThrough: Lsn;
}

export interface Volume {
  readonly volumeId: VolumeId;
  readonly pageSize: number;
  /** Pages per protection group. PG g covers pages [1 + g*pgPages, (g+1)*pgPages]. */
  readonly pgPages: number;
  /** Bumped by each recovery; fences older writers (invariant 8). Starts at 1. */
  readonly volumeEpoch: Epoch;
  /** Bumped each time the volume's geometry changes (a protection group is added). Starts at 1. */
  readonly geometryEpoch: number;
  readonly createdAtWallMs: number;
  readonly pgs: readonly ProtectionGroup[];
  readonly writer: WriterRecord | null;
  /** Every completed recovery, oldest first. */
  readonly recoveries: readonly RecoveryRecord[];
}

export interface CreateVolumeRequest {
  readonly volumeId: VolumeId;
  /** Bytes per page; a power of two in [512, 65536]. Default 4096. */
  readonly pageSize?: number;
  /** Pages per protection group. Default 262144 (1 GiB of 4 KiB pages); tests use tiny values. */
  readonly pgPages?: number;
  /** Protection groups to create now; the volume grows with `addProtectionGroup`. Default 1. */
  readonly pgCount?: number;
}

export interface SetWriterRequest {
  readonly volumeId: VolumeId;
  readonly endpoint: string;
  readonly epoch: Epoch;
}

export interface ControlPlaneApi {
  listNodes(): Promise<StorageNodeInfo[]>;
  /** Registers the node on its first call (or when its address changes) and records that it is alive. */
  heartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse>;
  listVolumes(): Promise<Volume[]>;
  /** VOLUME_NOT_FOUND when there is no such volume. */
  getVolume(volumeId: VolumeId): Promise<Volume>;
  /** CONFLICT when the volume exists; PLACEMENT_IMPOSSIBLE without 2 live nodes in each of 3 AZs. */
  createVolume(request: CreateVolumeRequest): Promise<Volume>;
  /** Grows the volume by one protection group (bumps the geometry epoch); resolves with the new volume. */
  addProtectionGroup(volumeId: VolumeId): Promise<Volume>;
  /** Compare-and-set: CONFLICT (details.epoch = current) unless the volume epoch equals `expected`. */
  bumpVolumeEpoch(volumeId: VolumeId, expected: Epoch): Promise<Epoch>;
  /** WRITER_FENCED when `epoch` is older than the volume epoch; INVALID_ARGUMENT when newer. */
  setWriter(request: SetWriterRequest): Promise<Volume>;
  /**
   * Appends a completed recovery. Only the writer of the current epoch records, once per epoch:
   * WRITER_FENCED for an older epoch, CONFLICT if this epoch already recorded one.
   */
  recordRecovery(volumeId: VolumeId, request: RecordRecoveryRequest): Promise<Volume>;
}

// ------------------------------------------------------------------------------------------ defaults

export const DEFAULT_PAGE_SIZE = 4096;
export const DEFAULT_PG_PAGES = 262_144;
export const DEFAULT_PG_COUNT = 1;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 3000;
export const DEFAULT_CONTROL_PLANE_PORT = 7070;
export const DEFAULT_CONTROL_PLANE_URL = `http://127.0.0.1:${DEFAULT_CONTROL_PLANE_PORT}`;

/** Bounds on what one request may ask for. */
export const API_LIMITS = {
  maxPgsPerVolume: 4096,
  maxPgPages: 2 ** 31,
  maxVolumes: 1024,
  maxNodes: 1024,
  maxEndpointChars: 256,
  /** Recoveries remembered per volume (one per writer restart); matches a segment's annulment limit. */
  maxRecoveries: 10_000,
  maxAddressChars: 260,
} as const;

// ---------------------------------------------------------------------------------------- validation

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_RULE = "1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit";

function invalid(message: string): BorealisError {
  return new BorealisError("INVALID_ARGUMENT", message);
}

export function parseName(value: unknown, what: string): string {
  if (typeof value !== "string" || !NAME_RE.test(value)) {
    throw invalid(`${what} must be ${NAME_RULE}; got ${JSON.stringify(value) ?? "nothing"}`);
  }
  return value;
}

export const parseNodeId = (v: unknown): NodeId => NodeId(parseName(v, "node id"));
export const parseAz = (v: unknown): Az => Az(parseName(v, "AZ"));
export const parseVolumeId = (v: unknown): VolumeId => VolumeId(parseName(v, "volume id"));

/** A "host:port" with a real (non-zero) port; returned normalised as given. */
export function parseAddress(value: unknown, what = "address"): string {
  if (typeof value !== "string" || value.length === 0 || value.length > API_LIMITS.maxAddressChars) {
    throw invalid(`${what} must be HOST:PORT`);
  }
  let hp;
  try {
    hp = parseHostPort(value);
  } catch (e) {
    throw invalid(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (hp.host.length === 0 || hp.port === 0) throw invalid(`${what} must be HOST:PORT with a port in 1..65535; got "${value}"`);
  return value;
}

export function parseEpoch(value: unknown, what = "epoch"): Epoch {
  if (!isSafeUint(value)) throw invalid(`${what} must be a non-negative integer; got ${JSON.stringify(value) ?? "nothing"}`);
  return Epoch(value);
}

function optionalInt(value: unknown, what: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (!isSafeUint(value) || value < min || value > max) {
    throw invalid(`${what} must be an integer in [${min}, ${max}]; got ${JSON.stringify(value)}`);
  }
  return value;
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw invalid(`${what}: expected a JSON object`);
  return body as Record<string, unknown>;
}

function noExtraFields(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw invalid(`${what}: unknown field "${k}" (allowed: ${allowed.join(", ")})`);
  }
}

export function parseHeartbeatRequest(body: unknown): HeartbeatRequest {
  const o = asObject(body, "heartbeat");
  noExtraFields(o, ["nodeId", "az", "address"], "heartbeat");
  return { nodeId: parseNodeId(o["nodeId"]), az: parseAz(o["az"]), address: parseAddress(o["address"]) };
}

/** Fills in the defaults, so the service stores complete values. */
export function parseCreateVolumeRequest(body: unknown): Required<CreateVolumeRequest> {
  const o = asObject(body, "create volume");
  noExtraFields(o, ["volumeId", "pageSize", "pgPages", "pgCount"], "create volume");
  const pageSize = optionalInt(o["pageSize"], "pageSize", 512, 65536, DEFAULT_PAGE_SIZE);
  if ((pageSize & (pageSize - 1)) !== 0) throw invalid(`pageSize must be a power of two; got ${pageSize}`);
  return {
    volumeId: parseVolumeId(o["volumeId"]),
    pageSize,
    pgPages: optionalInt(o["pgPages"], "pgPages", 1, API_LIMITS.maxPgPages, DEFAULT_PG_PAGES),
    pgCount: optionalInt(o["pgCount"], "pgCount", 1, API_LIMITS.maxPgsPerVolume, DEFAULT_PG_COUNT),
  };
}

export function parseSetWriterRequest(body: unknown): SetWriterRequest {
  const o = asObject(body, "set writer");
  noExtraFields(o, ["volumeId", "endpoint", "epoch"], "set writer");
  const endpoint = o["endpoint"];
  if (typeof endpoint !== "string" || endpoint.length === 0 || endpoint.length > API_LIMITS.maxEndpointChars
    || /[\u0000-\u001f\u007f]/.test(endpoint)) {
    throw invalid(`writer endpoint must be 1-${API_LIMITS.maxEndpointChars} printable characters`);
  }
  return { volumeId: parseVolumeId(o["volumeId"]), endpoint, epoch: parseEpoch(o["epoch"], "writer epoch") };
}

/** The body of `POST /v1/volumes/:id/epoch`: `{ "expect": <current epoch> }`. */
export function parseEpochBumpRequest(body: unknown): Epoch {
  const o = asObject(body, "bump volume epoch");
  noExtraFields(o, ["expect"], "bump volume epoch");
  return parseEpoch(o["expect"], "expect");
}

/** The body of `POST /v1/volumes/:id/recoveries`. */
export function parseRecordRecoveryRequest(body: unknown): RecordRecoveryRequest {
  const o = asObject(body, "record recovery");
  noExtraFields(o, ["epoch", "vdl", "truncateThrough"], "record recovery");
  const vdl = o["vdl"];
  const truncateThrough = o["truncateThrough"];
  if (!isSafeUint(vdl) || !isSafeUint(truncateThrough) || truncateThrough < vdl) {
    throw invalid("vdl and truncateThrough must be LSNs with truncateThrough ≥ vdl");
  }
  return { epoch: parseEpoch(o["epoch"], "recovery epoch"), vdl: vdl as Lsn, truncateThrough: truncateThrough as Lsn };
}
