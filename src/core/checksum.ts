/**
 * CRC32C (Castagnoli), the checksum of every record, page version and frame (invariant 9).
 *
 * `@node-rs/crc32` computes it with the CPU's CRC32 instruction; a JavaScript table version would cost
 * about 20× more per byte on the commit path.
 */
import { crc32c as nativeCrc32c } from "@node-rs/crc32";

/** CRC32C of `bytes`, continuing from `initial` when a checksum spans several buffers. */
export function crc32c(bytes: Uint8Array, initial = 0): number {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return nativeCrc32c(buf, initial) >>> 0;
}
