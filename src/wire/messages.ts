/**
 * Every message of the storage protocol (compute ↔ storage, storage ↔ storage, admin ↔ storage), its
 * TypeScript shape and its binary encoding. One file so that the format has one home (STYLE.md, rule 7);
 * `docs/wire-protocol.md` describes it for people.
 *
 * A frame (`frame.ts`) carries one message: a request with a request id, or the response to one. The
 * message body is `u8 type` followed by the fields below in order. Records inside a write batch or a
 * records response are encoded by `record.ts` and checksummed individually; the frame checksum covers
 * the whole body on top of that.
 */
import { BorealisError, ErrorCodes, errorCodeFromWire, type ErrorCode, type ErrorDetails } from "../core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId, type Epochs, type SegmentKey } from "../core/types.js";
import { ByteReader, ByteWriter } from "./bytes.js";
import { identitySeed, readRecord, writeRecord, type EncodedRecord } from "./record.js";

/** Bumped on any incompatible change; peers agree on one in `hello`. */
export const PROTOCOL_VERSION = 1;

export type Role = "writer" | "peer" | "admin";
const ROLES: readonly Role[] = ["writer", "peer", "admin"];

/** A protection group's shape, fixed when the volume is created (control plane). */
export interface SegmentGeometry {
  readonly volumeId: VolumeId;
  readonly pgId: PgId;
  readonly firstPage: PageNo;
  readonly pageCount: number;
  readonly pageSize: number;
}

/**
 * One recovery's annulment (invariant 8): every record above `aboveLsn` written under an epoch older
 * than `epoch` is removed. A segment applies each annulment it has not seen, oldest first.
 */
export interface Annulment {
  readonly epoch: Epoch;
  readonly aboveLsn: Lsn;
}

/** What a segment tells about itself: in acks, in `borealis status`, and to recovery. */
export interface SegmentState {
  readonly geometry: SegmentGeometry;
  readonly epochs: Epochs;
  /** Segment complete LSN (invariant 3). */
  readonly scl: Lsn;
  /** Highest LSN the segment holds, SCL or above (records past a gap). */
  readonly highestLsn: Lsn;
  /** Highest VDL any writer has told this segment: a durable point recovery can start from. */
  readonly knownVdl: Lsn;
  /** Every record ≤ this is applied to stored page versions. */
  readonly materializedLsn: Lsn;
  /** Page versions below this may have been coalesced away; reads below it are refused. */
  readonly retentionLsn: Lsn;
  /** Highest page any record held here writes (0: none): where the database file ends, for recovery. */
  readonly highestPageNo: PageNo;
}

export type Request =
  | { readonly type: "hello"; readonly minVersion: number; readonly maxVersion: number; readonly role: Role; readonly senderId: string; readonly maxFrameBytes: number }
  | { readonly type: "ping" }
  | { readonly type: "nodeStatus" }
  /** Creates the segment if this node does not host it yet; idempotent for the same geometry. */
  | { readonly type: "openSegment"; readonly geometry: SegmentGeometry; readonly epochs: Epochs }
  /** Appends records (any order, duplicates ignored); answered after fsync with the segment's SCL. */
  | { readonly type: "writeBatch"; readonly key: SegmentKey; readonly epochs: Epochs; readonly writerVdl: Lsn; readonly records: readonly EncodedRecord[] }
  /**
   * The page as of `readPoint` (≥ the retention point). `minScl` ≤ readPoint is the PG's last record
   * at or below the read point, as the reader knows it: the segment must be complete up to it.
   */
  | { readonly type: "getPage"; readonly key: SegmentKey; readonly epochs: Epochs; readonly pageNo: PageNo; readonly readPoint: Lsn; readonly minScl: Lsn }
  | { readonly type: "getSegmentState"; readonly key: SegmentKey; readonly epochs: Epochs }
  /**
   * Raises the segment's epochs durably (recovery step 1, invariant 8) and applies any of the given
   * earlier annulments it missed; lower epochs are refused. Writes at the new epoch wait for `annul`.
   */
  | { readonly type: "setEpoch"; readonly key: SegmentKey; readonly epochs: Epochs; readonly annulments: readonly Annulment[] }
  /** Records with LSN in (afterLsn, upToLsn], in LSN order, at most about `maxBytes` of them. */
  | { readonly type: "readRecords"; readonly key: SegmentKey; readonly epochs: Epochs; readonly afterLsn: Lsn; readonly upToLsn: Lsn; readonly maxBytes: number }
  /**
   * Adopts `epochs`, applies every annulment in the list it has not applied (the volume's whole
   * history, the current epoch's last), and from then on takes writes at the current epoch.
   */
  | { readonly type: "annul"; readonly key: SegmentKey; readonly epochs: Epochs; readonly annulments: readonly Annulment[] };

export type Response =
  | { readonly type: "helloOk"; readonly version: number; readonly nodeId: string; readonly az: string; readonly maxFrameBytes: number; readonly maxInFlight: number }
  | { readonly type: "pong" }
  | { readonly type: "nodeStatus"; readonly nodeId: string; readonly az: string; readonly fenced: boolean; readonly segments: readonly SegmentState[] }
  | { readonly type: "writeAck"; readonly scl: Lsn }
  | { readonly type: "page"; readonly pageLsn: Lsn; readonly bytes: Uint8Array }
  | { readonly type: "segmentState"; readonly state: SegmentState }
  | { readonly type: "records"; readonly scl: Lsn; readonly more: boolean; readonly records: readonly EncodedRecord[] }
  | { readonly type: "error"; readonly code: ErrorCode; readonly message: string; readonly details: ErrorDetails };

export type RequestType = Request["type"];
export type ResponseType = Response["type"];

/** The response type each request expects on success. */
export interface ResponseFor {
  hello: Extract<Response, { type: "helloOk" }>;
  ping: Extract<Response, { type: "pong" }>;
  nodeStatus: Extract<Response, { type: "nodeStatus" }>;
  openSegment: Extract<Response, { type: "segmentState" }>;
  writeBatch: Extract<Response, { type: "writeAck" }>;
  getPage: Extract<Response, { type: "page" }>;
  getSegmentState: Extract<Response, { type: "segmentState" }>;
  setEpoch: Extract<Response, { type: "segmentState" }>;
  readRecords: Extract<Response, { type: "records" }>;
  annul: Extract<Response, { type: "segmentState" }>;
}

// Type tags on the wire. Requests and responses share one space so a frame is never ambiguous.
const RequestTag: Record<RequestType, number> = {
  hello: 1, ping: 2, nodeStatus: 3, openSegment: 4, writeBatch: 5, getPage: 6,
  getSegmentState: 7, setEpoch: 8, readRecords: 9, annul: 10,
};
const ResponseTag: Record<ResponseType, number> = {
  helloOk: 64, pong: 65, nodeStatus: 66, writeAck: 67, page: 68, segmentState: 69, records: 70, error: 127,
};
const requestByTag = new Map(Object.entries(RequestTag).map(([k, v]) => [v, k as RequestType]));
const responseByTag = new Map(Object.entries(ResponseTag).map(([k, v]) => [v, k as ResponseType]));

export function isRequestTag(tag: number): boolean {
  return requestByTag.has(tag);
}

// ------------------------------------------------------------------------------------------- encoding

function writeKey(w: ByteWriter, key: SegmentKey): void {
  w.string(key.volumeId).varint(key.pgId);
}

function writeEpochs(w: ByteWriter, e: Epochs): void {
  w.varint(e.volumeEpoch).varint(e.membershipEpoch);
}

function writeGeometry(w: ByteWriter, g: SegmentGeometry): void {
  w.string(g.volumeId).varint(g.pgId).varint(g.firstPage).varint(g.pageCount).varint(g.pageSize);
}

function writeState(w: ByteWriter, s: SegmentState): void {
  writeGeometry(w, s.geometry);
  writeEpochs(w, s.epochs);
  w.varint(s.scl).varint(s.highestLsn).varint(s.knownVdl).varint(s.materializedLsn).varint(s.retentionLsn).varint(s.highestPageNo);
}

/** At most this many annulments in one message (one per recovery of the volume). */
export const MAX_ANNULMENTS_PER_MESSAGE = 10_000;

function writeAnnulments(w: ByteWriter, list: readonly Annulment[]): void {
  w.varint(list.length);
  for (const a of list) w.varint(a.epoch).varint(a.aboveLsn);
}

function readAnnulments(r: ByteReader): Annulment[] {
  const count = r.varint("annulment count");
  if (count > MAX_ANNULMENTS_PER_MESSAGE || count > r.remaining / 2) {
    throw new BorealisError("PROTOCOL_ERROR", `annulment count ${count} exceeds the limit or the frame`);
  }
  const out: Annulment[] = [];
  for (let i = 0; i < count; i++) out.push({ epoch: Epoch(r.varint("annulment epoch")), aboveLsn: Lsn(r.varint("annulment lsn")) });
  return out;
}

function writeRecords(w: ByteWriter, key: SegmentKey, records: readonly EncodedRecord[]): void {
  w.varint(records.length);
  const seed = identitySeed(key);
  for (const r of records) {
    // A record decoded from the wire keeps its bytes; re-encode only records built in this process.
    if (r.bytes.byteLength > 0) w.bytes(r.bytes);
    else writeRecord(w, r, seed);
  }
}

/** Appends the message body (type tag and fields) to `w`. */
export function writeRequest(w: ByteWriter, m: Request): void {
  w.u8(RequestTag[m.type]);
  switch (m.type) {
    case "hello":
      w.varint(m.minVersion).varint(m.maxVersion).u8(ROLES.indexOf(m.role)).string(m.senderId).varint(m.maxFrameBytes);
      return;
    case "ping":
    case "nodeStatus":
      return;
    case "openSegment":
      writeGeometry(w, m.geometry);
      writeEpochs(w, m.epochs);
      return;
    case "writeBatch":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      w.varint(m.writerVdl);
      writeRecords(w, m.key, m.records);
      return;
    case "getPage":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      w.varint(m.pageNo).varint(m.readPoint).varint(m.minScl);
      return;
    case "getSegmentState":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      return;
    case "setEpoch":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      writeAnnulments(w, m.annulments);
      return;
    case "readRecords":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      w.varint(m.afterLsn).varint(m.upToLsn).varint(m.maxBytes);
      return;
    case "annul":
      writeKey(w, m.key);
      writeEpochs(w, m.epochs);
      writeAnnulments(w, m.annulments);
      return;
  }
}

/**
 * Appends a response body to `w`. Records responses need the segment key for their checksums; it is
 * the key of the request being answered.
 */
export function writeResponse(w: ByteWriter, m: Response, key?: SegmentKey): void {
  w.u8(ResponseTag[m.type]);
  switch (m.type) {
    case "helloOk":
      w.varint(m.version).string(m.nodeId).string(m.az).varint(m.maxFrameBytes).varint(m.maxInFlight);
      return;
    case "pong":
      return;
    case "nodeStatus":
      w.string(m.nodeId).string(m.az).bool(m.fenced).varint(m.segments.length);
      for (const s of m.segments) writeState(w, s);
      return;
    case "writeAck":
      w.varint(m.scl);
      return;
    case "page":
      w.varint(m.pageLsn).blob(m.bytes);
      return;
    case "segmentState":
      writeState(w, m.state);
      return;
    case "records":
      if (key === undefined) throw new BorealisError("INTERNAL", "records response needs its segment key");
      w.varint(m.scl).bool(m.more);
      writeRecords(w, key, m.records);
      return;
    case "error":
      w.varint(ErrorCodes[m.code].wire).string(m.message).string(JSON.stringify(m.details));
      return;
  }
}

// ------------------------------------------------------------------------------------------- decoding

function readKey(r: ByteReader): SegmentKey {
  const volumeId = VolumeId(r.string("volume id"));
  const pgId = PgId(r.varint("pg id"));
  return { volumeId, pgId };
}

function readEpochs(r: ByteReader): Epochs {
  const volumeEpoch = Epoch(r.varint("volume epoch"));
  const membershipEpoch = Epoch(r.varint("membership epoch"));
  return { volumeEpoch, membershipEpoch };
}

function readGeometry(r: ByteReader): SegmentGeometry {
  const volumeId = VolumeId(r.string("volume id"));
  const pgId = PgId(r.varint("pg id"));
  const firstPage = PageNo(r.varint("first page"));
  const pageCount = r.varint("page count");
  const pageSize = r.varint("page size");
  return { volumeId, pgId, firstPage, pageCount, pageSize };
}

function readState(r: ByteReader): SegmentState {
  const geometry = readGeometry(r);
  const epochs = readEpochs(r);
  return {
    geometry, epochs,
    scl: Lsn(r.varint("scl")),
    highestLsn: Lsn(r.varint("highest lsn")),
    knownVdl: Lsn(r.varint("known vdl")),
    materializedLsn: Lsn(r.varint("materialized lsn")),
    retentionLsn: Lsn(r.varint("retention lsn")),
    highestPageNo: PageNo(r.varint("highest page")),
  };
}

function readRecords(r: ByteReader, buf: Uint8Array, key: SegmentKey): EncodedRecord[] {
  const count = r.varint("record count");
  // Each record takes at least 12 bytes: a count beyond that is a lie, refused before allocating.
  if (count > r.remaining / 12) throw new BorealisError("PROTOCOL_ERROR", `record count ${count} exceeds the frame`);
  const seed = identitySeed(key);
  const records: EncodedRecord[] = [];
  for (let i = 0; i < count; i++) records.push(readRecord(r, buf, seed));
  return records;
}

export function readRequest(r: ByteReader, buf: Uint8Array): Request {
  const tag = r.u8("message type");
  const type = requestByTag.get(tag);
  let m: Request;
  switch (type) {
    case "hello": {
      const minVersion = r.varint("min version");
      const maxVersion = r.varint("max version");
      const role = ROLES[r.u8("role")];
      if (role === undefined) throw new BorealisError("PROTOCOL_ERROR", "hello: unknown role");
      m = { type, minVersion, maxVersion, role, senderId: r.string("sender id"), maxFrameBytes: r.varint("max frame bytes") };
      break;
    }
    case "ping":
    case "nodeStatus":
      m = { type };
      break;
    case "openSegment": {
      const geometry = readGeometry(r);
      m = { type, geometry, epochs: readEpochs(r) };
      break;
    }
    case "writeBatch": {
      const key = readKey(r);
      const epochs = readEpochs(r);
      const writerVdl = Lsn(r.varint("writer vdl"));
      m = { type, key, epochs, writerVdl, records: readRecords(r, buf, key) };
      break;
    }
    case "getPage": {
      const key = readKey(r);
      const epochs = readEpochs(r);
      const pageNo = PageNo(r.varint("page"));
      const readPoint = Lsn(r.varint("read point"));
      m = { type, key, epochs, pageNo, readPoint, minScl: Lsn(r.varint("min scl")) };
      break;
    }
    case "getSegmentState": {
      const key = readKey(r);
      m = { type, key, epochs: readEpochs(r) };
      break;
    }
    case "setEpoch": {
      const key = readKey(r);
      const epochs = readEpochs(r);
      m = { type, key, epochs, annulments: readAnnulments(r) };
      break;
    }
    case "readRecords": {
      const key = readKey(r);
      const epochs = readEpochs(r);
      const afterLsn = Lsn(r.varint("after lsn"));
      const upToLsn = Lsn(r.varint("up to lsn"));
      m = { type, key, epochs, afterLsn, upToLsn, maxBytes: r.varint("max bytes") };
      break;
    }
    case "annul": {
      const key = readKey(r);
      const epochs = readEpochs(r);
      m = { type, key, epochs, annulments: readAnnulments(r) };
      break;
    }
    default:
      throw new BorealisError("PROTOCOL_ERROR", `unknown request type ${tag}`);
  }
  r.end_(type);
  return m;
}

export function readResponse(r: ByteReader, buf: Uint8Array, key?: SegmentKey): Response {
  const tag = r.u8("message type");
  const type = responseByTag.get(tag);
  let m: Response;
  switch (type) {
    case "helloOk": {
      const version = r.varint("version");
      const nodeId = r.string("node id");
      const az = r.string("az");
      m = { type, version, nodeId, az, maxFrameBytes: r.varint("max frame bytes"), maxInFlight: r.varint("max in flight") };
      break;
    }
    case "pong":
      m = { type };
      break;
    case "nodeStatus": {
      const nodeId = r.string("node id");
      const az = r.string("az");
      const fenced = r.bool("fenced");
      const count = r.varint("segment count");
      // A segment state takes at least 12 bytes (geometry 5, epochs 2, five LSNs 5): more is a lie.
      if (count > r.remaining / 12) throw new BorealisError("PROTOCOL_ERROR", `segment count ${count} exceeds the frame`);
      const segments: SegmentState[] = [];
      for (let i = 0; i < count; i++) segments.push(readState(r));
      m = { type, nodeId, az, fenced, segments };
      break;
    }
    case "writeAck":
      m = { type, scl: Lsn(r.varint("scl")) };
      break;
    case "page": {
      const pageLsn = Lsn(r.varint("page lsn"));
      m = { type, pageLsn, bytes: r.blob("page bytes") };
      break;
    }
    case "segmentState":
      m = { type, state: readState(r) };
      break;
    case "records": {
      if (key === undefined) throw new BorealisError("INTERNAL", "records response needs its segment key");
      const scl = Lsn(r.varint("scl"));
      const more = r.bool("more");
      m = { type, scl, more, records: readRecords(r, buf, key) };
      break;
    }
    case "error": {
      const code = errorCodeFromWire(r.varint("error code"));
      const message = r.string("error message");
      let details: ErrorDetails = {};
      try {
        const parsed: unknown = JSON.parse(r.string("error details"));
        if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) details = parsed as ErrorDetails;
      } catch {
        throw new BorealisError("PROTOCOL_ERROR", "error details are not JSON");
      }
      m = { type, code, message, details };
      break;
    }
    default:
      throw new BorealisError("PROTOCOL_ERROR", `unknown response type ${tag}`);
  }
  r.end_(type);
  return m;
}

/** The error response for any thrown value: BorealisErrors keep their code, anything else is INTERNAL. */
export function errorResponse(e: unknown): Extract<Response, { type: "error" }> {
  if (e instanceof BorealisError) return { type: "error", code: e.code, message: e.message, details: e.details };
  return { type: "error", code: "INTERNAL", message: e instanceof Error ? e.message : String(e), details: {} };
}

/** Turns an error response back into the BorealisError it was made from. */
export function errorFromResponse(m: Extract<Response, { type: "error" }>): BorealisError {
  return new BorealisError(m.code, m.message, m.details);
}
