/**
 * Byte-range diffs: what a redo record says about its page unless it carries a full image.
 *
 *     varint rangeCount, then per range: varint offset, varint length, `length` bytes
 *
 * Ranges are sorted, do not overlap, and lie inside the page. Runs of changed bytes closer than
 * `MERGE_GAP` are merged, because a range header costs about as much as a few unchanged bytes. The
 * writer encodes (compute), storage nodes apply (materialization, GetPage); both use this file.
 */
import { BorealisError } from "../core/errors.js";
import { ByteReader, ByteWriter } from "./bytes.js";
import { isFullImage, type RedoRecord } from "./record.js";

const MERGE_GAP = 8;

/**
 * The diff turning `before` into `after`, or null when they are equal. When the diff would be as large
 * as the page, returns null too and sets nothing: the caller sends a full image instead
 * (`diffOrImage`).
 */
export function encodePageDiff(before: Uint8Array, after: Uint8Array): Uint8Array | null {
  if (before.byteLength !== after.byteLength) {
    throw new BorealisError("INVALID_ARGUMENT", `page sizes differ: ${before.byteLength} vs ${after.byteLength}`);
  }
  const n = after.byteLength;
  const ranges: [number, number][] = [];
  let i = 0;
  while (i < n) {
    if (before[i] === after[i]) { i++; continue; }
    let end = i + 1;
    let j = end;
    // Extend while the next difference is within MERGE_GAP bytes.
    while (j < n && j - end < MERGE_GAP) {
      if (before[j] !== after[j]) end = j + 1;
      j++;
    }
    ranges.push([i, end]);
    i = end;
  }
  if (ranges.length === 0) return null;
  const w = new ByteWriter(16 + ranges.reduce((s, [a, b]) => s + b - a + 6, 0));
  w.varint(ranges.length);
  for (const [a, b] of ranges) w.varint(a).varint(b - a).bytes(after.subarray(a, b));
  return w.finish();
}

export interface PagePayload {
  readonly flags: number;
  readonly payload: Uint8Array;
}

/** The smaller of a diff and a full image; null when the page did not change. */
export function diffOrImage(before: Uint8Array | null, after: Uint8Array, fullImageFlag: number): PagePayload | null {
  if (before === null) return { flags: fullImageFlag, payload: after };
  const diff = encodePageDiff(before, after);
  if (diff === null) return null;
  if (diff.byteLength >= after.byteLength) return { flags: fullImageFlag, payload: after };
  return { flags: 0, payload: diff };
}

/** Applies one record to `page` in place. Bytes outside the page are a PROTOCOL_ERROR, never written. */
export function applyRedo(page: Uint8Array, record: Pick<RedoRecord, "flags" | "payload" | "lsn">): void {
  if (isFullImage(record)) {
    if (record.payload.byteLength !== page.byteLength) {
      throw new BorealisError("PROTOCOL_ERROR", `full image at LSN ${record.lsn} has ${record.payload.byteLength} bytes, page has ${page.byteLength}`);
    }
    page.set(record.payload);
    return;
  }
  const r = new ByteReader(record.payload);
  const count = r.varint("diff range count");
  let lastEnd = 0;
  for (let k = 0; k < count; k++) {
    const offset = r.varint("diff offset");
    const length = r.varint("diff length");
    if (offset < lastEnd || length === 0 || offset + length > page.byteLength) {
      throw new BorealisError("PROTOCOL_ERROR", `diff at LSN ${record.lsn} has a bad range ${offset}+${length} (page ${page.byteLength} bytes)`);
    }
    page.set(r.bytes(length, "diff bytes"), offset);
    lastEnd = offset + length;
  }
  r.end_("diff");
}
