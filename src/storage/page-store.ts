/**
 * The page store: where a storage node keeps what it has sorted out of the hot log (ARCHITECTURE D6):
 * segment metadata, records by (volume, PG, page, LSN), page images by (volume, PG, page, LSN), and an
 * LSN index per segment. Reads are synchronous and see one consistent state between commits; writes
 * are batches of operations committed atomically and durably (`commit` resolves only after the data
 * is on disk).
 *
 * Two implementations share one key layout and one checksum rule, over an ordered key-value seam:
 * - `LmdbPageStore`: LMDB (the `lmdb` package). Why LMDB (ARCHITECTURE D1): an embedded, transactional,
 *   memory-mapped B+tree with ordered binary keys, so "newest image of page P at or below L" is one
 *   reverse range read with no I/O of ours, reads are synchronous and cheap, and commits are atomic and
 *   crash-safe (copy-on-write pages, no second log of our own to get wrong). It is the one store that
 *   does its own file I/O rather than going through `Disk`; the simulator uses `MemoryPageStore`.
 * - `MemoryPageStore`: sorted arrays in memory, for the simulator and tests. A commit either happens
 *   completely or not at all; with a clock it completes after a latency, and never if the simulated
 *   process dies first. `reopen()` gives a new handle on what was committed (a restart).
 *
 * Keys (big-endian, so byte order is numeric order):
 *
 *     segment prefix := u16 volumeId length, volumeId (UTF-8), u64 pgId
 *     meta    key    := prefix                       value := u32 crc, meta (encodeMeta)
 *     records key    := prefix, u64 page, u64 lsn    value := record bytes (record.ts), exactly as received
 *     images  key    := prefix, u64 page, u64 lsn    value := u32 crc, page bytes
 *     lsns    key    := prefix, u64 lsn              value := u32 crc, varint page
 *
 * Every value carries a CRC32C over its identity (volume, PG, page, LSN) and bytes (invariant 9), verified
 * on every read; a mismatch is CORRUPT_DATA and the value is never served. For images, index entries
 * and metadata it is a u32 prefix over the bytes seeded with CRC32C(kind tag ‖ key). A record already
 * carries such a checksum (the writer's, seeded with volume and PG, covering its LSN, page, epoch and
 * payload): it is verified, and its LSN and page must equal the key's, so a record read back under any
 * other key or with a flipped bit fails just the same, and reads checksum each record once, not twice.
 */
import { open as openLmdb, type Database, type RootDatabase } from "lmdb";
import { assert } from "../core/assert.js";
import { crc32c } from "../core/checksum.js";
import { BorealisError } from "../core/errors.js";
import { Epoch, Lsn, PageNo, PgId, VolumeId, segmentKeyString, type SegmentKey } from "../core/types.js";
import type { Clock } from "../env/env.js";
import { ByteReader, ByteWriter } from "../wire/bytes.js";
import { decodeRecord, type EncodedRecord } from "../wire/record.js";
import type { Annulment, SegmentMeta } from "./segment.js";

// -------------------------------------------------------------------------------------- the interface

export interface StoredImage {
  readonly lsn: Lsn;
  /** A fresh copy: the caller may apply records to it in place. */
  readonly bytes: Uint8Array;
}

export type PageStoreOp =
  | { readonly op: "putSegment"; readonly meta: SegmentMeta }
  | { readonly op: "putRecord"; readonly key: SegmentKey; readonly record: EncodedRecord }
  | { readonly op: "deleteRecord"; readonly key: SegmentKey; readonly pageNo: PageNo; readonly lsn: Lsn }
  | { readonly op: "putImage"; readonly key: SegmentKey; readonly pageNo: PageNo; readonly lsn: Lsn; readonly bytes: Uint8Array }
  | { readonly op: "deleteImage"; readonly key: SegmentKey; readonly pageNo: PageNo; readonly lsn: Lsn };

export interface PageStore {
  /** "lmdb" or "memory", for status and logs. */
  readonly kind: string;
  /** Every segment's metadata. A corrupt entry is reported through `onCorrupt` and skipped. */
  listSegments(onCorrupt?: (what: string, error: BorealisError) => void): SegmentMeta[];
  getSegment(key: SegmentKey): SegmentMeta | undefined;
  /** The newest image of `pageNo` with LSN ≤ `atOrBelow`. */
  newestImage(key: SegmentKey, pageNo: PageNo, atOrBelow: Lsn): StoredImage | undefined;
  /** The LSN of the newest image of `pageNo` with LSN ≤ `atOrBelow`, without reading the image. */
  newestImageLsn(key: SegmentKey, pageNo: PageNo, atOrBelow: Lsn): Lsn | undefined;
  /** LSNs of the images of `pageNo` in (afterLsn, upToLsn], ascending, at most `limit`. */
  imageLsns(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit: number): Lsn[];
  /** Records of `pageNo` with LSN in (afterLsn, upToLsn], in LSN order, verified. */
  pageRecords(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit?: number): EncodedRecord[];
  /** LSNs of the records of `pageNo` in (afterLsn, upToLsn], ascending, at most `limit` (no reads of values). */
  pageRecordLsns(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit: number): Lsn[];
  countPageRecords(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn): number;
  /** Records of the segment with LSN in (afterLsn, upToLsn] in LSN order, about `maxBytes` (at least one). */
  recordsByLsn(key: SegmentKey, afterLsn: Lsn, upToLsn: Lsn, maxBytes: number): { records: EncodedRecord[]; more: boolean };
  /** (lsn, page) of the segment's records in (afterLsn, upToLsn], descending, at most `limit`. */
  recordIndexDesc(key: SegmentKey, afterLsn: Lsn, upToLsn: Lsn, limit: number): { lsn: Lsn; pageNo: PageNo }[];
  /** The lowest page > `afterPage` with any record or image, if any. */
  nextPage(key: SegmentKey, afterPage: number): PageNo | undefined;
  /**
   * Walks every entry of every table and checks what reads cannot: the keys come in strictly
   * increasing order, each one is found again by a positioned lookup (LMDB keeps no checksum of its
   * own branch pages, and a flipped byte in one misroutes lookups and range reads to a neighbouring
   * leaf, where every value still verifies and a read quietly returns an older version of a page),
   * and the record table and its LSN index name each other. Values are not checksummed here (every
   * read does that). Returns what it found wrong, at most `maxProblems` lines; empty when sound.
   */
  verifyStructure(maxProblems?: number): { entries: number; problems: string[] };
  /** Applies the operations atomically; resolves once they are durable. */
  commit(ops: readonly PageStoreOp[]): Promise<void>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------- keys

type DbName = "meta" | "records" | "images" | "lsns";
const DB_NAMES: readonly DbName[] = ["meta", "records", "images", "lsns"];
const KIND_TAG: Record<DbName, number> = { meta: 1, records: 2, images: 3, lsns: 4 };

const textEncoder = new TextEncoder();

// Big-endian by hand: a DataView per key component costs more than the key itself.
function putU64(out: Uint8Array, at: number, n: number): void {
  // Up to 2^53 inclusive: range ends are "LSN + 1" of a safe LSN.
  assert(Number.isInteger(n) && n >= 0 && n <= 2 ** 53, `key component ${n} is out of range`);
  const hi = Math.floor(n / 2 ** 32);
  const lo = n >>> 0;
  out[at] = hi >>> 24; out[at + 1] = (hi >>> 16) & 0xff; out[at + 2] = (hi >>> 8) & 0xff; out[at + 3] = hi & 0xff;
  out[at + 4] = lo >>> 24; out[at + 5] = (lo >>> 16) & 0xff; out[at + 6] = (lo >>> 8) & 0xff; out[at + 7] = lo & 0xff;
}

function getU64(b: Uint8Array, at: number): number {
  const hi = ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
  const lo = ((b[at + 4]! << 24) | (b[at + 5]! << 16) | (b[at + 6]! << 8) | b[at + 7]!) >>> 0;
  return hi * 2 ** 32 + lo;
}

const prefixCache = new Map<string, Uint8Array>();

/** The segment's key prefix; cached, since every read builds keys (callers copy, never mutate it). */
function segmentPrefix(key: SegmentKey, pgOverride?: number): Uint8Array {
  const pg = pgOverride ?? key.pgId;
  const cacheKey = `${key.volumeId}\u0000${pg}`;
  let prefix = prefixCache.get(cacheKey);
  if (prefix === undefined) {
    prefix = buildPrefix(key.volumeId, pg);
    if (prefixCache.size >= 10_000) prefixCache.clear();
    prefixCache.set(cacheKey, prefix);
  }
  return prefix;
}

function buildPrefix(volumeId: string, pg: number): Uint8Array {
  const vol = textEncoder.encode(volumeId);
  assert(vol.byteLength <= 255, "volume ids are at most 255 bytes (checked at openSegment)");
  const out = new Uint8Array(2 + vol.byteLength + 8);
  out[0] = vol.byteLength >> 8;
  out[1] = vol.byteLength & 0xff;
  out.set(vol, 2);
  putU64(out, 2 + vol.byteLength, pg);
  return out;
}

function withSuffix(prefix: Uint8Array, ...nums: number[]): Uint8Array {
  const out = new Uint8Array(prefix.byteLength + nums.length * 8);
  out.set(prefix);
  nums.forEach((n, i) => putU64(out, prefix.byteLength + i * 8, n));
  return out;
}

function pageKey(key: SegmentKey, pageNo: number, lsn: number): Uint8Array {
  return withSuffix(segmentPrefix(key), pageNo, lsn);
}

function decodePrefix(k: Uint8Array): { key: SegmentKey; rest: number } {
  const len = (k[0]! << 8) | k[1]!;
  const volumeId = VolumeId(new TextDecoder().decode(k.subarray(2, 2 + len)));
  const pgId = PgId(getU64(k, 2 + len));
  return { key: { volumeId, pgId }, rest: 2 + len + 8 };
}

function seedFor(db: DbName, key: Uint8Array): number {
  return crc32c(key, crc32c(Uint8Array.of(KIND_TAG[db])));
}

function seal(db: DbName, key: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, crc32c(body, seedFor(db, key)), true);
  out.set(body, 4);
  return out;
}

/** The verified body of a stored value, or CORRUPT_DATA. */
function unseal(db: DbName, key: Uint8Array, value: Uint8Array, what: () => string): Uint8Array {
  if (value.byteLength < 4) throw corrupt(what(), "value too short");
  const stored = new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true);
  const body = value.subarray(4);
  if (crc32c(body, seedFor(db, key)) !== stored) throw corrupt(what(), "checksum mismatch");
  return body;
}

function corrupt(what: string, why: string): BorealisError {
  return new BorealisError("CORRUPT_DATA", `stored ${what} failed verification (${why}); not served`);
}

/** 2: adds writableEpoch. */
const META_FORMAT_VERSION = 2;

export function encodeMeta(m: SegmentMeta): Uint8Array {
  const w = new ByteWriter(128);
  const g = m.geometry;
  w.u8(META_FORMAT_VERSION)
    .string(g.volumeId).varint(g.pgId).varint(g.firstPage).varint(g.pageCount).varint(g.pageSize)
    .varint(m.epochs.volumeEpoch).varint(m.epochs.membershipEpoch)
    .varint(m.knownVdl).varint(m.materializedLsn).varint(m.retentionLsn)
    .varint(m.annulments.length);
  for (const a of m.annulments) w.varint(a.epoch).varint(a.aboveLsn);
  w.varint(m.highestPageNo);
  w.varint(m.writableEpoch);
  return w.finish();
}

export function decodeMeta(b: Uint8Array): SegmentMeta {
  const r = new ByteReader(b);
  const version = r.u8("meta version");
  if (version !== META_FORMAT_VERSION) throw new BorealisError("CORRUPT_DATA", `segment metadata version ${version} is unknown`);
  const geometry = {
    volumeId: VolumeId(r.string("volume id")), pgId: PgId(r.varint("pg id")), firstPage: PageNo(r.varint("first page")),
    pageCount: r.varint("page count"), pageSize: r.varint("page size"),
  };
  const epochs = { volumeEpoch: Epoch(r.varint("volume epoch")), membershipEpoch: Epoch(r.varint("membership epoch")) };
  const knownVdl = Lsn(r.varint("known vdl"));
  const materializedLsn = Lsn(r.varint("materialized lsn"));
  const retentionLsn = Lsn(r.varint("retention lsn"));
  const count = r.varint("annulment count");
  if (count > r.remaining / 2) throw new BorealisError("CORRUPT_DATA", `annulment count ${count} exceeds the value`);
  const annulments: Annulment[] = [];
  for (let i = 0; i < count; i++) annulments.push({ epoch: Epoch(r.varint("annul epoch")), aboveLsn: Lsn(r.varint("annul lsn")) });
  const highestPageNo = r.varint("highest page");
  const writableEpoch = Epoch(r.varint("writable epoch"));
  r.end_("segment metadata");
  return { geometry, epochs, knownVdl, materializedLsn, retentionLsn, annulments, highestPageNo, writableEpoch };
}

// ------------------------------------------------------------------------------- the ordered-KV seam

interface KvEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

type KvOp = { readonly db: DbName; readonly key: Uint8Array; readonly value?: Uint8Array };

/**
 * What both stores need from an ordered key-value engine. Ranges are LMDB's: forward covers
 * start ≤ key < end; reverse covers end < key ≤ start, newest first.
 */
interface OrderedKv {
  get(db: DbName, key: Uint8Array): Uint8Array | undefined;
  range(db: DbName, start: Uint8Array, end: Uint8Array, options?: { reverse?: boolean; limit?: number }): Iterable<KvEntry>;
  count(db: DbName, start: Uint8Array, end: Uint8Array): number;
  commit(ops: readonly KvOp[]): Promise<void>;
  close(): Promise<void>;
}

/** The store logic over any ordered KV: key layout, checksums, range queries. */
abstract class KvPageStore implements PageStore {
  abstract readonly kind: string;
  protected closed = false;

  protected constructor(protected readonly kv: OrderedKv) {}

  listSegments(onCorrupt?: (what: string, error: BorealisError) => void): SegmentMeta[] {
    const out: SegmentMeta[] = [];
    for (const { key, value } of this.kv.range("meta", new Uint8Array(0), Uint8Array.of(0xff, 0xff, 0xff))) {
      try {
        const body = unseal("meta", key, value, () => "segment metadata");
        const meta = decodeMeta(body);
        const { key: k } = decodePrefix(key);
        if (k.volumeId !== meta.geometry.volumeId || k.pgId !== meta.geometry.pgId) throw corrupt("segment metadata", "filed under another segment");
        out.push(meta);
      } catch (e) {
        const err = e instanceof BorealisError ? e : new BorealisError("CORRUPT_DATA", `segment metadata: ${String(e)}`);
        if (onCorrupt === undefined) throw err;
        onCorrupt(Buffer.from(key).toString("hex"), err);
      }
    }
    return out;
  }

  getSegment(key: SegmentKey): SegmentMeta | undefined {
    const k = segmentPrefix(key);
    const v = this.kv.get("meta", k);
    if (v === undefined) return undefined;
    return decodeMeta(unseal("meta", k, v, () => `metadata of ${segmentKeyString(key)}`));
  }

  newestImage(key: SegmentKey, pageNo: PageNo, atOrBelow: Lsn): StoredImage | undefined {
    for (const { key: k, value } of this.kv.range("images", pageKey(key, pageNo, atOrBelow), pageKey(key, pageNo, 0), { reverse: true, limit: 1 })) {
      const lsn = Lsn(getU64(k, k.byteLength - 8));
      const body = unseal("images", k, value, () => `image of ${segmentKeyString(key)} page ${pageNo} at LSN ${lsn}`);
      return { lsn, bytes: body.slice() };
    }
    return undefined;
  }

  newestImageLsn(key: SegmentKey, pageNo: PageNo, atOrBelow: Lsn): Lsn | undefined {
    for (const { key: k } of this.kv.range("images", pageKey(key, pageNo, atOrBelow), pageKey(key, pageNo, 0), { reverse: true, limit: 1 })) {
      return Lsn(getU64(k, k.byteLength - 8));
    }
    return undefined;
  }

  imageLsns(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit: number): Lsn[] {
    if (upToLsn <= afterLsn) return [];
    const out: Lsn[] = [];
    for (const { key: k } of this.kv.range("images", pageKey(key, pageNo, afterLsn + 1), pageKey(key, pageNo, upToLsn + 1), { limit })) {
      out.push(Lsn(getU64(k, k.byteLength - 8)));
    }
    return out;
  }

  pageRecords(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit?: number): EncodedRecord[] {
    if (upToLsn <= afterLsn) return [];
    const out: EncodedRecord[] = [];
    const options = limit === undefined ? {} : { limit };
    for (const { key: k, value } of this.kv.range("records", pageKey(key, pageNo, afterLsn + 1), pageKey(key, pageNo, upToLsn + 1), options)) {
      out.push(this.verifyRecord(key, k, value, pageNo, Lsn(getU64(k, k.byteLength - 8))));
    }
    return out;
  }

  pageRecordLsns(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn, limit: number): Lsn[] {
    if (upToLsn <= afterLsn) return [];
    const out: Lsn[] = [];
    for (const { key: k } of this.kv.range("records", pageKey(key, pageNo, afterLsn + 1), pageKey(key, pageNo, upToLsn + 1), { limit })) {
      out.push(Lsn(getU64(k, k.byteLength - 8)));
    }
    return out;
  }

  countPageRecords(key: SegmentKey, pageNo: PageNo, afterLsn: Lsn, upToLsn: Lsn): number {
    if (upToLsn <= afterLsn) return 0;
    return this.kv.count("records", pageKey(key, pageNo, afterLsn + 1), pageKey(key, pageNo, upToLsn + 1));
  }

  recordsByLsn(key: SegmentKey, afterLsn: Lsn, upToLsn: Lsn, maxBytes: number): { records: EncodedRecord[]; more: boolean } {
    const records: EncodedRecord[] = [];
    if (upToLsn <= afterLsn) return { records, more: false };
    const prefix = segmentPrefix(key);
    let bytes = 0;
    for (const { key: k, value } of this.kv.range("lsns", withSuffix(prefix, afterLsn + 1), withSuffix(prefix, upToLsn + 1))) {
      const lsn = Lsn(getU64(k, k.byteLength - 8));
      const body = unseal("lsns", k, value, () => `LSN index entry ${lsn} of ${segmentKeyString(key)}`);
      const pageNo = PageNo(new ByteReader(body).varint("page"));
      if (records.length > 0 && bytes >= maxBytes) return { records, more: true };
      const rk = pageKey(key, pageNo, lsn);
      const rv = this.kv.get("records", rk);
      if (rv === undefined) throw corrupt(`record ${lsn} of ${segmentKeyString(key)}`, "LSN index names a record that is missing");
      const record = this.verifyRecord(key, rk, rv, pageNo, lsn);
      records.push(record);
      bytes += record.bytes.byteLength;
    }
    return { records, more: false };
  }

  recordIndexDesc(key: SegmentKey, afterLsn: Lsn, upToLsn: Lsn, limit: number): { lsn: Lsn; pageNo: PageNo }[] {
    const out: { lsn: Lsn; pageNo: PageNo }[] = [];
    if (upToLsn <= afterLsn) return out;
    const prefix = segmentPrefix(key);
    for (const { key: k, value } of this.kv.range("lsns", withSuffix(prefix, upToLsn), withSuffix(prefix, afterLsn), { reverse: true, limit })) {
      const lsn = Lsn(getU64(k, k.byteLength - 8));
      const body = unseal("lsns", k, value, () => `LSN index entry ${lsn} of ${segmentKeyString(key)}`);
      out.push({ lsn, pageNo: PageNo(new ByteReader(body).varint("page")) });
    }
    return out;
  }

  nextPage(key: SegmentKey, afterPage: number): PageNo | undefined {
    const start = withSuffix(segmentPrefix(key), afterPage + 1, 0);
    const end = segmentPrefix(key, key.pgId + 1);
    let best: number | undefined;
    for (const db of ["records", "images"] as const) {
      for (const { key: k } of this.kv.range(db, start, end, { limit: 1 })) {
        const page = getU64(k, k.byteLength - 16);
        if (best === undefined || page < best) best = page;
      }
    }
    return best === undefined ? undefined : PageNo(best);
  }

  verifyStructure(maxProblems = 20): { entries: number; problems: string[] } {
    const problems: string[] = [];
    let entries = 0;
    const note = (db: DbName, k: Uint8Array, why: string): void => {
      if (problems.length < maxProblems) problems.push(`${db} ${Buffer.from(k).toString("hex")}: ${why}`);
    };
    const keyLength = { meta: 0, records: 16, images: 16, lsns: 8 } as const;
    // Every LSN index entry names a record that is there (checked below, one lookup each), and the
    // index names each record once (it is keyed by LSN): so equal counts mean each record is indexed.
    const perTable: Record<DbName, number> = { meta: 0, records: 0, images: 0, lsns: 0 };
    for (const db of DB_NAMES) {
      let previous: Uint8Array | undefined;
      try {
        for (const { key: rawKey, value: rawValue } of this.kv.range(db, new Uint8Array(0), Uint8Array.of(0xff, 0xff, 0xff))) {
          // A copy: the range's buffers may be reused by the lookups below. The value is read (for
          // the LSN index) before any lookup.
          const k = Uint8Array.from(rawKey);
          entries++;
          if (previous !== undefined && compareBytes(previous, k) >= 0) note(db, k, "out of order");
          previous = k;
          // segment prefix := u16 volume id length, volume id, u64 PG; then the table's suffix.
          const rest = k.byteLength >= 2 ? 2 + ((k[0]! << 8) | k[1]!) + 8 : -1;
          if (rest < 0 || k.byteLength !== rest + keyLength[db]) { note(db, k, "key has the wrong length"); continue; }
          let indexedPage = -1;
          if (db === "lsns") {
            try {
              indexedPage = new ByteReader(unseal("lsns", k, rawValue, () => `LSN index entry ${getU64(k, rest)}`)).varint("page");
            } catch (e) {
              note(db, k, e instanceof Error ? e.message : String(e));
              continue;
            }
          }
          if (this.kv.get(db, k) === undefined) { note(db, k, "not found by a lookup of its own key (a damaged index page)"); continue; }
          perTable[db]++;
          if (db === "lsns") {
            const lsn = getU64(k, rest);
            if (this.kv.get("records", withSuffix(k.subarray(0, rest), indexedPage, lsn)) === undefined) {
              note(db, k, `LSN index names record ${lsn} of page ${indexedPage}, which is missing`);
            }
          }
        }
      } catch (e) {
        note(db, previous ?? new Uint8Array(0), `scan failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (perTable.records !== perTable.lsns && problems.length < maxProblems) {
      problems.push(`records ${perTable.records} found by a scan, LSN index entries ${perTable.lsns}`);
    }
    return { entries, problems };
  }

  async commit(ops: readonly PageStoreOp[]): Promise<void> {
    if (this.closed) throw new BorealisError("SHUTTING_DOWN", "page store is closed");
    const kvOps: KvOp[] = [];
    for (const o of ops) {
      switch (o.op) {
        case "putSegment": {
          const k = segmentPrefix(o.meta.geometry);
          kvOps.push({ db: "meta", key: k, value: seal("meta", k, encodeMeta(o.meta)) });
          break;
        }
        case "putRecord": {
          assert(o.record.bytes.byteLength > 0, "stored records keep their encoded bytes");
          const k = pageKey(o.key, o.record.pageNo, o.record.lsn);
          // The record's own checksum is the value's: see the header.
          kvOps.push({ db: "records", key: k, value: o.record.bytes });
          const ik = withSuffix(segmentPrefix(o.key), o.record.lsn);
          kvOps.push({ db: "lsns", key: ik, value: seal("lsns", ik, new ByteWriter(8).varint(o.record.pageNo).finish()) });
          break;
        }
        case "deleteRecord":
          kvOps.push({ db: "records", key: pageKey(o.key, o.pageNo, o.lsn) });
          kvOps.push({ db: "lsns", key: withSuffix(segmentPrefix(o.key), o.lsn) });
          break;
        case "putImage": {
          const k = pageKey(o.key, o.pageNo, o.lsn);
          kvOps.push({ db: "images", key: k, value: seal("images", k, o.bytes) });
          break;
        }
        case "deleteImage":
          kvOps.push({ db: "images", key: pageKey(o.key, o.pageNo, o.lsn) });
          break;
      }
    }
    await this.kv.commit(kvOps);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kv.close();
  }

  /** Entries per table (for status and for tests of garbage collection). */
  sizes(): Record<DbName, number> {
    const out = {} as Record<DbName, number>;
    for (const db of DB_NAMES) out[db] = this.kv.count(db, new Uint8Array(0), Uint8Array.of(0xff));
    return out;
  }

  /**
   * Flips one bit of a stored value, as bit rot at rest would: for tests and the simulator's
   * fault injection, never called by the node. Returns false when there is no such value.
   */
  async flipStoredBit(what: "record" | "image" | "meta", key: SegmentKey, pageNo: number, lsn: number, bit: number): Promise<boolean> {
    const db: DbName = what === "record" ? "records" : what === "image" ? "images" : "meta";
    const k = what === "meta" ? segmentPrefix(key) : pageKey(key, pageNo, lsn);
    const v = this.kv.get(db, k);
    if (v === undefined) return false;
    const copy = v.slice();
    const at = (bit >> 3) % copy.byteLength;
    copy[at]! ^= 1 << (bit & 7);
    await this.kv.commit([{ db, key: k, value: copy }]);
    return true;
  }

  private verifyRecord(key: SegmentKey, k: Uint8Array, value: Uint8Array, pageNo: number, lsn: Lsn): EncodedRecord {
    const what = () => `record of ${segmentKeyString(key)} page ${pageNo} at LSN ${lsn}`;
    assert(k.byteLength > 16, "record keys end with page and LSN");
    let record: EncodedRecord;
    try {
      record = decodeRecord(value, key);
    } catch (e) {
      throw corrupt(what(), e instanceof Error ? e.message : String(e));
    }
    if (record.lsn !== lsn || record.pageNo !== pageNo) throw corrupt(what(), `holds LSN ${record.lsn} page ${record.pageNo}`);
    return record;
  }
}

// ---------------------------------------------------------------------------------------------- LMDB

export interface LmdbPageStoreOptions {
  /** Initial map size in bytes; LMDB grows it as needed. */
  readonly mapSizeBytes?: number;
}

class LmdbKv implements OrderedKv {
  private readonly dbs: Record<DbName, Database<Uint8Array, Uint8Array>>;

  constructor(private readonly root: RootDatabase<Uint8Array, Uint8Array>) {
    const dbs = {} as Record<DbName, Database<Uint8Array, Uint8Array>>;
    for (const name of DB_NAMES) {
      dbs[name] = root.openDB<Uint8Array, Uint8Array>(name, { keyEncoding: "binary", encoding: "binary", cache: false, compression: false });
    }
    this.dbs = dbs;
  }

  get(db: DbName, key: Uint8Array): Uint8Array | undefined {
    return this.dbs[db].get(key);
  }

  range(db: DbName, start: Uint8Array, end: Uint8Array, options: { reverse?: boolean; limit?: number } = {}): Iterable<KvEntry> {
    const o: { start: Uint8Array; end: Uint8Array; reverse?: boolean; limit?: number } = { start, end };
    if (options.reverse) o.reverse = true;
    if (options.limit !== undefined) o.limit = options.limit;
    return this.dbs[db].getRange(o) as Iterable<KvEntry>;
  }

  count(db: DbName, start: Uint8Array, end: Uint8Array): number {
    return this.dbs[db].getCount({ start, end });
  }

  async commit(ops: readonly KvOp[]): Promise<void> {
    await this.root.transaction(() => {
      for (const o of ops) {
        const db = this.dbs[o.db];
        if (o.value === undefined) db.removeSync(o.key);
        else db.putSync(o.key, o.value);
      }
    });
    // With overlapping sync (the default on Linux) a transaction resolves when it is visible; it is
    // durable once `flushed` resolves.
    await this.root.flushed;
  }

  async close(): Promise<void> {
    await this.root.close();
  }
}

export class LmdbPageStore extends KvPageStore {
  readonly kind = "lmdb";

  private constructor(kv: LmdbKv, readonly path: string) {
    super(kv);
  }

  /** Opens (creating if needed) the LMDB environment in directory `path`. */
  static open(path: string, options: LmdbPageStoreOptions = {}): LmdbPageStore {
    const root = openLmdb<Uint8Array, Uint8Array>({
      path,
      maxDbs: 8,
      keyEncoding: "binary",
      encoding: "binary",
      cache: false,
      compression: false,
      ...(options.mapSizeBytes !== undefined ? { mapSize: options.mapSizeBytes } : {}),
    });
    return new LmdbPageStore(new LmdbKv(root), path);
  }
}

// -------------------------------------------------------------------------------------------- memory

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** One sorted table; binary search, splice on write (tests and simulations hold thousands, not billions). */
class SortedTable {
  readonly keys: Uint8Array[] = [];
  readonly values: Uint8Array[] = [];

  /** Index of the first key ≥ `key`. */
  lowerBound(key: Uint8Array): number {
    let lo = 0, hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareBytes(this.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const i = this.lowerBound(key);
    return i < this.keys.length && compareBytes(this.keys[i]!, key) === 0 ? this.values[i] : undefined;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    const i = this.lowerBound(key);
    if (i < this.keys.length && compareBytes(this.keys[i]!, key) === 0) this.values[i] = value;
    else {
      this.keys.splice(i, 0, key);
      this.values.splice(i, 0, value);
    }
  }

  remove(key: Uint8Array): void {
    const i = this.lowerBound(key);
    if (i < this.keys.length && compareBytes(this.keys[i]!, key) === 0) {
      this.keys.splice(i, 1);
      this.values.splice(i, 1);
    }
  }
}

/** What survives a simulated restart: the committed tables. */
class MemoryData {
  readonly tables: Record<DbName, SortedTable> = { meta: new SortedTable(), records: new SortedTable(), images: new SortedTable(), lsns: new SortedTable() };
  commits = 0;
}

export interface MemoryPageStoreOptions {
  /** With a clock, commits complete after `commitLatencyMs` on it (and never if its process dies). */
  readonly clock?: Clock;
  readonly commitLatencyMs?: number;
}

class MemoryKv implements OrderedKv {
  /** Set to make the next commits fail (disk errors in tests). */
  failCommits = 0;

  constructor(readonly data: MemoryData, private readonly options: MemoryPageStoreOptions) {}

  get(db: DbName, key: Uint8Array): Uint8Array | undefined {
    const v = this.data.tables[db].get(key);
    return v === undefined ? undefined : v.slice();
  }

  *range(db: DbName, start: Uint8Array, end: Uint8Array, options: { reverse?: boolean; limit?: number } = {}): Iterable<KvEntry> {
    const t = this.data.tables[db];
    const limit = options.limit ?? Infinity;
    let n = 0;
    if (!options.reverse) {
      for (let i = t.lowerBound(start); i < t.keys.length && n < limit; i++, n++) {
        if (compareBytes(t.keys[i]!, end) >= 0) return;
        yield { key: t.keys[i]!, value: t.values[i]!.slice() };
      }
      return;
    }
    // end < key ≤ start, descending.
    let i = t.lowerBound(start);
    if (i < t.keys.length && compareBytes(t.keys[i]!, start) === 0) i++;
    for (i--; i >= 0 && n < limit; i--, n++) {
      if (compareBytes(t.keys[i]!, end) <= 0) return;
      yield { key: t.keys[i]!, value: t.values[i]!.slice() };
    }
  }

  count(db: DbName, start: Uint8Array, end: Uint8Array): number {
    const t = this.data.tables[db];
    return Math.max(0, t.lowerBound(end) - t.lowerBound(start));
  }

  commit(ops: readonly KvOp[]): Promise<void> {
    const copies = ops.map((o) => ({ db: o.db, key: o.key.slice(), value: o.value?.slice() }));
    const apply = () => {
      // All or nothing: nothing above can throw once we start.
      for (const o of copies) {
        const t = this.data.tables[o.db];
        if (o.value === undefined) t.remove(o.key);
        else t.put(o.key, o.value);
      }
      this.data.commits++;
    };
    if (this.failCommits > 0) {
      this.failCommits--;
      return Promise.reject(new Error("EIO: simulated page store commit failure"));
    }
    const clock = this.options.clock;
    if (clock === undefined) {
      apply();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      clock.setTimer(this.options.commitLatencyMs ?? 0.5, () => {
        apply();
        resolve();
      });
    });
  }

  async close(): Promise<void> {}
}

export class MemoryPageStore extends KvPageStore {
  readonly kind = "memory";
  private readonly memKv: MemoryKv;

  constructor(options: MemoryPageStoreOptions = {}, data: MemoryData = new MemoryData()) {
    const kv = new MemoryKv(data, options);
    super(kv);
    this.memKv = kv;
  }

  /** A new handle on the committed data, as a restarted process would open it. */
  reopen(options: MemoryPageStoreOptions = {}): MemoryPageStore {
    return new MemoryPageStore(options, this.memKv.data);
  }

  /** Makes the next `n` commits fail (for tests of the node's reaction to a store error). */
  failNextCommits(n: number): void {
    this.memKv.failCommits = n;
  }

  /** Commits applied so far. */
  get commits(): number {
    return this.memKv.data.commits;
  }
}
