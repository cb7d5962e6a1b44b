/**
 * The redo record: the unit of the log, identical on the wire, in a storage node's hot log and in a
 * backup. The writer encodes it once; storage nodes verify and keep the exact bytes they received.
 *
 * Layout (all integers LEB128 varints except the checksum):
 *
 *     u32    crc               CRC32C of everything after it, seeded with the record's identity
 *     u8     flags             CPL | FULL_IMAGE
 *     varint lsn
 *     varint lsn - prevLsnInSegment   backlink within the protection group (SCL, gap detection)
 *     varint lsn - prevLsnOfPage      backlink within the page (materialization)
 *     varint lsn - prevLsnInVolume    backlink within the volume (recovery)
 *     varint epoch             volume epoch of the writer that allocated the LSN
 *     varint pageNo
 *     varint payloadLength
 *     bytes  payload           FULL_IMAGE: the page; otherwise a byte-range diff (redo-payload.ts)
 *
 * The volume id and PG number are not stored in the record: the batch or log entry that carries it
 * names them, and the checksum covers them through its seed (`identitySeed`). A record copied under
 * another volume or PG therefore fails its checksum (invariant 9). Backlinks are stored as positive
 * deltas, so a typical header is 12–16 bytes rather than 50.
 */
import { BorealisError } from "../core/errors.js";
import { crc32c } from "../core/checksum.js";
import { Epoch, Lsn, PageNo, type SegmentKey } from "../core/types.js";
import { ByteReader, ByteWriter } from "./bytes.js";

export const RecordFlag = {
  /** Last record of a mini-transaction: a consistency point; VDL only ever lands on one. */
  CPL: 1,
  /** The payload is the whole page rather than a diff against the page's previous version. */
  FULL_IMAGE: 2,
} as const;
const KNOWN_FLAGS = RecordFlag.CPL | RecordFlag.FULL_IMAGE;

/** SQLite's largest page size; no payload is ever larger. */
export const MAX_PAGE_SIZE = 65536;

export interface RedoRecord {
  readonly lsn: Lsn;
  readonly epoch: Epoch;
  readonly pageNo: PageNo;
  readonly prevLsnInSegment: Lsn;
  readonly prevLsnOfPage: Lsn;
  readonly prevLsnInVolume: Lsn;
  readonly flags: number;
  readonly payload: Uint8Array;
}

/** A record together with its encoded bytes, so that storing or forwarding it copies, not re-encodes. */
export interface EncodedRecord extends RedoRecord {
  readonly bytes: Uint8Array;
}

export function isCpl(record: { readonly flags: number }): boolean {
  return (record.flags & RecordFlag.CPL) !== 0;
}

export function isFullImage(record: { readonly flags: number }): boolean {
  return (record.flags & RecordFlag.FULL_IMAGE) !== 0;
}

const identityCache = new Map<string, number>();

/** CRC32C of the record's identity prefix: every record checksum of a segment starts from it. */
export function identitySeed(key: SegmentKey): number {
  const cacheKey = `${key.volumeId}\u0000${key.pgId}`;
  let seed = identityCache.get(cacheKey);
  if (seed === undefined) {
    const w = new ByteWriter(64).string("borealis-record").string(key.volumeId).varint(key.pgId);
    seed = crc32c(w.finish());
    if (identityCache.size > 10_000) identityCache.clear();
    identityCache.set(cacheKey, seed);
  }
  return seed;
}

/** Appends the record's encoding to `w`; returns the encoded bytes' offset in `w`. */
export function writeRecord(w: ByteWriter, record: RedoRecord, seed: number): number {
  checkRecordShape(record);
  const start = w.reserve(4);
  w.u8(record.flags)
    .varint(record.lsn)
    .varint(record.lsn - record.prevLsnInSegment)
    .varint(record.lsn - record.prevLsnOfPage)
    .varint(record.lsn - record.prevLsnInVolume)
    .varint(record.epoch)
    .varint(record.pageNo)
    .blob(record.payload);
  const all = w.finish();
  w.patchU32(start, crc32c(all.subarray(start + 4), seed));
  return start;
}

export function encodeRecord(record: RedoRecord, key: SegmentKey): EncodedRecord {
  const w = new ByteWriter(24 + record.payload.byteLength);
  writeRecord(w, record, identitySeed(key));
  const bytes = w.finish();
  return { ...record, bytes };
}

/**
 * Reads one record at the reader's position and verifies its checksum against `seed`. Throws
 * CHECKSUM_MISMATCH for a record that is well-formed but corrupt or under another identity, and
 * PROTOCOL_ERROR for bytes that are not a record at all.
 */
export function readRecord(r: ByteReader, buf: Uint8Array, seed: number): EncodedRecord {
  const start = r.offset;
  const crc = r.u32("record crc");
  const flags = r.u8("record flags");
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new BorealisError("PROTOCOL_ERROR", `record has unknown flags 0x${flags.toString(16)}`);
  const lsn = r.varint("record lsn");
  const dSeg = r.varint("record segment backlink");
  const dPage = r.varint("record page backlink");
  const dVol = r.varint("record volume backlink");
  const epoch = r.varint("record epoch");
  const pageNo = r.varint("record page");
  const payloadLength = r.varint("record payload length");
  if (payloadLength > MAX_PAGE_SIZE) throw new BorealisError("PROTOCOL_ERROR", `record payload of ${payloadLength} bytes exceeds ${MAX_PAGE_SIZE}`);
  const payload = r.bytes(payloadLength, "record payload");
  const bytes = buf.subarray(start, r.offset);
  const actual = crc32c(bytes.subarray(4), seed);
  if (actual !== crc) {
    throw new BorealisError("CHECKSUM_MISMATCH", `record at LSN ${lsn} failed its checksum (or belongs to another segment)`, { lsn });
  }
  // Shape is checked after the checksum: a corrupt record reports corruption, not a strange field.
  if (lsn < 1 || dSeg < 1 || dSeg > lsn || dPage < 1 || dPage > lsn || dVol < 1 || dVol > lsn || pageNo < 1) {
    throw new BorealisError("PROTOCOL_ERROR", `record at LSN ${lsn} has impossible backlinks or page number`);
  }
  return {
    lsn: Lsn(lsn),
    epoch: Epoch(epoch),
    pageNo: PageNo(pageNo),
    prevLsnInSegment: Lsn(lsn - dSeg),
    prevLsnOfPage: Lsn(lsn - dPage),
    prevLsnInVolume: Lsn(lsn - dVol),
    flags,
    payload,
    bytes,
  };
}

export function decodeRecord(bytes: Uint8Array, key: SegmentKey): EncodedRecord {
  const r = new ByteReader(bytes);
  const record = readRecord(r, bytes, identitySeed(key));
  r.end_("record");
  return record;
}

function checkRecordShape(record: RedoRecord): void {
  const ok =
    Number.isSafeInteger(record.lsn) && record.lsn >= 1 &&
    record.prevLsnInSegment >= 0 && record.prevLsnInSegment < record.lsn &&
    record.prevLsnOfPage >= 0 && record.prevLsnOfPage < record.lsn &&
    record.prevLsnInVolume >= 0 && record.prevLsnInVolume < record.lsn &&
    record.pageNo >= 1 && record.epoch >= 0 && (record.flags & ~KNOWN_FLAGS) === 0 &&
    record.payload.byteLength <= MAX_PAGE_SIZE;
  if (!ok) {
    throw new BorealisError("INVALID_ARGUMENT", `malformed redo record: lsn ${record.lsn}, page ${record.pageNo}, backlinks ${record.prevLsnInSegment}/${record.prevLsnOfPage}/${record.prevLsnInVolume}`);
  }
}
