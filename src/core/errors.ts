/**
 * The one registry of operating errors (FoundationDB's `error_definitions.h`, libsql's `LibsqlError`).
 *
 * Every error that crosses a module boundary, a process boundary or the wire is a `BorealisError`
 * whose `code` comes from this table. The number is what travels on the wire; the name is what code
 * and logs use; `retryable` says whether the same request may succeed if sent again (to the same or
 * another segment). Codes are never renumbered: append new ones at the end of their block.
 */

export const ErrorCodes = {
  // 1xx — protocol and framing: the peer sent something this process cannot read.
  PROTOCOL_ERROR: { wire: 100, retryable: false, text: "malformed or unexpected message" },
  UNSUPPORTED_VERSION: { wire: 101, retryable: false, text: "unsupported protocol version" },
  FRAME_TOO_LARGE: { wire: 102, retryable: false, text: "frame larger than the negotiated maximum" },
  CHECKSUM_MISMATCH: { wire: 103, retryable: true, text: "checksum mismatch" },
  TOO_MANY_IN_FLIGHT: { wire: 104, retryable: true, text: "too many requests in flight on this connection" },
  CONNECTION_CLOSED: { wire: 105, retryable: true, text: "connection closed" },
  TIMEOUT: { wire: 106, retryable: true, text: "timed out" },
  INVALID_ARGUMENT: { wire: 107, retryable: false, text: "invalid argument" },

  // 2xx — fencing (invariant 8, invariant 11): the caller is out of date and must not retry as is.
  STALE_VOLUME_EPOCH: { wire: 200, retryable: false, text: "request carries an older volume epoch" },
  STALE_MEMBERSHIP_EPOCH: { wire: 201, retryable: false, text: "request carries an older membership epoch" },
  EPOCH_NOT_ADOPTED: { wire: 202, retryable: false, text: "segment has not adopted this volume epoch; annul first" },

  // 3xx — segment state: try another segment, or later.
  SEGMENT_NOT_FOUND: { wire: 300, retryable: false, text: "this node hosts no such segment" },
  READ_POINT_ABOVE_SCL: { wire: 301, retryable: true, text: "read point above the segment's SCL; try another segment" },
  READ_POINT_BELOW_RETENTION: { wire: 302, retryable: false, text: "read point below the segment's retention point" },
  PAGE_OUT_OF_RANGE: { wire: 303, retryable: false, text: "page is not in this protection group" },
  SEGMENT_EXISTS: { wire: 304, retryable: false, text: "segment exists with a different geometry" },

  // 4xx — the node itself cannot take writes.
  STORAGE_FENCED: { wire: 400, retryable: true, text: "node stopped acknowledging after a disk error (invariant 2)" },
  DISK_FULL: { wire: 401, retryable: true, text: "no space left on the node's disk" },
  CORRUPT_DATA: { wire: 402, retryable: true, text: "stored bytes failed their checksum" },
  SHUTTING_DOWN: { wire: 403, retryable: true, text: "node is shutting down" },

  // 5xx — the volume and the writer.
  NO_QUORUM: { wire: 500, retryable: true, text: "no quorum of segments answered" },
  COMMIT_OUTCOME_UNKNOWN: { wire: 501, retryable: false, text: "the commit may or may not be durable" },
  WRITER_FENCED: { wire: 502, retryable: false, text: "a newer writer took over this volume" },
  BACKPRESSURE: { wire: 503, retryable: true, text: "LSN allocation limit reached; storage is behind" },
  VOLUME_NOT_FOUND: { wire: 504, retryable: false, text: "no such volume" },

  // 6xx — control plane.
  CONFLICT: { wire: 600, retryable: true, text: "concurrent update; read again and retry" },
  NOT_FOUND: { wire: 601, retryable: false, text: "not found" },
  PLACEMENT_IMPOSSIBLE: { wire: 602, retryable: false, text: "not enough live nodes in distinct AZs to place a protection group" },

  INTERNAL: { wire: 999, retryable: false, text: "internal error" },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

const byWire = new Map<number, ErrorCode>(
  (Object.keys(ErrorCodes) as ErrorCode[]).map((code) => [ErrorCodes[code].wire, code]),
);

export function errorCodeFromWire(wire: number): ErrorCode {
  return byWire.get(wire) ?? "INTERNAL";
}

/** Extra facts some errors carry, e.g. the segment's SCL with READ_POINT_ABOVE_SCL. */
export interface ErrorDetails {
  readonly scl?: number;
  readonly epoch?: number;
  readonly [key: string]: unknown;
}

export class BorealisError extends Error {
  override name = "BorealisError";
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message?: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code].text, options);
    this.code = code;
    this.details = details;
  }

  get retryable(): boolean {
    return ErrorCodes[this.code].retryable;
  }
}

export function isBorealisError(e: unknown, code?: ErrorCode): e is BorealisError {
  return e instanceof BorealisError && (code === undefined || e.code === code);
}

/** Wraps an unknown thrown value with a verb-phrase context, Neon-style: "open hot log: ENOSPC". */
export function withContext(context: string, e: unknown): Error {
  if (e instanceof BorealisError) {
    return new BorealisError(e.code, `${context}: ${e.message}`, e.details, { cause: e });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new Error(`${context}: ${message}`, { cause: e });
}
