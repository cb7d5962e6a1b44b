/**
 * Errors on the Hrana wire: what the client endpoint answers when a request cannot be served, and how
 * an engine error becomes a Hrana `Error` structure (`{message, code}`).
 *
 * Hrana's error codes are the server's to choose ("not yet stabilized", HRANA_3_SPEC.md), and
 * @libsql/client surfaces `code` verbatim as `LibsqlError.code`. So that applications and tools written
 * against sqld (libSQL's server) keep working, we reuse sqld's names wherever sqld has one
 * (libsql-server/src/hrana/{stmt.rs, http/request.rs, http/stream.rs}): `SQLITE_CONSTRAINT`,
 * `STREAM_EXPIRED`, `SQL_STORE_TOO_MANY`, `RESPONSE_TOO_LARGE`… These strings are a foreign protocol's
 * vocabulary, listed once in `HranaErrorCodes` below; they are not Borealis error codes. A Borealis
 * operating error raised by the engine (`BorealisError`, `src/core/errors.ts`) travels under its own
 * registry name (`COMMIT_OUTCOME_UNKNOWN`, `BACKPRESSURE`, …) so that a client can tell them apart.
 */
import { BorealisError } from "../core/errors.js";
import { SqliteError } from "../compute/sql-engine.js";

/**
 * Codes the endpoint itself produces, with the HTTP status used when the error fails a whole HTTP
 * request (rather than one request of a pipeline, which is answered inside a 200 response).
 */
export const HranaErrorCodes = {
  // The HTTP request as a whole.
  PROTOCOL_ERROR: { status: 400, text: "malformed request" },
  REQUEST_TOO_LARGE: { status: 413, text: "request body too large" },
  NOT_FOUND: { status: 404, text: "no such endpoint" },
  METHOD_NOT_ALLOWED: { status: 405, text: "method not allowed" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, text: "unsupported content type" },
  BATON_INVALID: { status: 400, text: "invalid baton" },
  BATON_REUSED: { status: 400, text: "baton already used" },
  // sqld answers 500 here; we answer 400 because nothing is wrong with the server: the client left
  // the stream idle. @libsql/client ignores the status and reads `code` from the JSON body.
  STREAM_EXPIRED: { status: 400, text: "stream expired" },
  TOO_MANY_STREAMS: { status: 503, text: "too many open streams" },
  SHUTTING_DOWN: { status: 503, text: "server is shutting down" },
  INTERNAL: { status: 500, text: "internal error" },
  // One request of a pipeline (answered as a `StreamResultError`, HTTP 200).
  STREAM_CLOSED: { status: 400, text: "stream is closed" },
  UNKNOWN_REQUEST: { status: 400, text: "unknown request type" },
  SQL_NOT_FOUND: { status: 400, text: "no SQL text stored under this id" },
  SQL_EXISTS: { status: 400, text: "an SQL text is already stored under this id" },
  SQL_STORE_TOO_MANY: { status: 400, text: "too many stored SQL texts on this stream" },
  SQL_STORE_TOO_LARGE: { status: 400, text: "stored SQL text too large" },
  RESPONSE_TOO_LARGE: { status: 500, text: "response too large" },
} as const;

export type HranaErrorCode = keyof typeof HranaErrorCodes;

/** An error the endpoint raises itself; `status` applies when it fails a whole HTTP request. */
export class HranaError extends Error {
  override name = "HranaError";
  constructor(readonly code: HranaErrorCode, message?: string) {
    super(message ?? HranaErrorCodes[code].text);
  }

  get status(): number {
    return HranaErrorCodes[this.code].status;
  }
}

/**
 * Hrana's `Error` structure. `extended_code` and `raw_code` are our additions (SQLite's extended result
 * code, by name and number): the spec says peers ignore fields they do not know, and @libsql/client
 * does not read them yet over HTTP ("TODO: Parse extendedCode once the SQL over HTTP protocol supports
 * it", client/lib-esm/hrana.js), but a client that wants them can have them.
 */
export interface ProtoError {
  readonly message: string;
  readonly code: string;
  readonly extended_code?: string;
  readonly raw_code?: number;
}

/**
 * Converts anything a request handler or the engine threw into a Hrana error. `unexpected` is called
 * for values that are neither ours nor the engine's declared error types: they are bugs somewhere and
 * deserve a log line, but must not take the server down.
 */
export function toProtoError(e: unknown, unexpected?: (e: unknown) => void): ProtoError {
  if (e instanceof SqliteError) {
    // sqld's message shape: "SQLite error: UNIQUE constraint failed: t.id".
    return { message: `SQLite error: ${e.message}`, code: e.code, extended_code: e.extendedCode, raw_code: e.rawCode };
  }
  if (e instanceof BorealisError) return { message: e.message, code: e.code };
  if (e instanceof HranaError) return { message: e.message, code: e.code };
  unexpected?.(e);
  const message = e instanceof Error ? e.message : String(e);
  return { message: `internal error: ${message}`, code: "INTERNAL" };
}
