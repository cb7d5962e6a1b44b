/**
 * A lean Hrana v2 client over HTTP: `node:http`, one keep-alive socket per connection, JSON in and
 * out, nothing else. It exists so the bench can tell the server's cost from the client library's:
 * @libsql/client 0.18 (undici fetch, web streams, its own batching layer) spends ~1.7–2 ms of CPU per
 * operation in the client process, more than the server it talks to, and on a 2-core machine that
 * CPU comes out of the server's share. This client speaks the same protocol with the same round trips
 * and spends a small fraction of that.
 *
 * Wire (src/endpoint/README.md, protocol.ts, values.ts): `POST /v2/pipeline` with
 *   {"baton": null | "<baton>", "requests": [{"type": "execute", "stmt": {sql, args, want_rows}}, …]}
 * answered by {"baton", "base_url", "results": [{"type": "ok", "response": …} | {"type": "error", "error": {message, code}}]}.
 * - autocommit statement: [execute, close] with baton null — one round trip, the stream opened and
 *   closed by the same request;
 * - transaction: the first statement goes as a `batch` [BEGIN IMMEDIATE, stmt if BEGIN succeeded],
 *   later ones as `execute` carrying the baton of the previous response, and [COMMIT, close] (or
 *   [ROLLBACK, close]) ends it. Round trips are those of @libsql/client's `transaction("write")`
 *   over Hrana v2 (its client/lib-esm/hrana.js), so the two client models do the same protocol work.
 * - values: integers {"type":"integer","value":"<decimal>"} (a JS number that is a safe integer, or a
 *   bigint), other numbers {"type":"float"}, text, blob as base64, null. Result integers come back as
 *   numbers when safe, else bigints; blobs as Buffers.
 * - errors: a failed request is a `HranaClientError` with the server's code (`SQLITE_BUSY`,
 *   `SQLITE_CONSTRAINT`, `STREAM_EXPIRED`, …) and message; a whole-request failure (non-200) too, with
 *   its HTTP status.
 * `base_url` is ignored: the bench talks to one endpoint.
 */
import http from "node:http";
import type { BenchConnection, Rows, SqlExecutor } from "./system.js";

export type HranaArg = number | bigint | string | Uint8Array | boolean | null;

type ProtoValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

interface ProtoStmt {
  sql: string;
  args: ProtoValue[];
  want_rows: boolean;
}

type ProtoRequest =
  | { type: "execute"; stmt: ProtoStmt }
  | { type: "batch"; batch: { steps: Array<{ condition?: { type: "ok"; step: number } | null; stmt: ProtoStmt }> } }
  | { type: "close" };

interface ProtoStmtResult {
  cols: Array<{ name: string | null }>;
  rows: ProtoValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
}

interface ProtoError {
  message: string;
  code?: string;
}

type ProtoResult =
  | { type: "ok"; response: { type: "execute"; result: ProtoStmtResult } | { type: "batch"; result: { step_results: Array<ProtoStmtResult | null>; step_errors: Array<ProtoError | null> } } | { type: "close" } }
  | { type: "error"; error: ProtoError };

interface PipelineResponse {
  baton: string | null;
  results: ProtoResult[];
}

/** A request the server refused: `code` is its Hrana/SQLite code, `status` the HTTP status. */
export class HranaClientError extends Error {
  override name = "HranaClientError";
  constructor(message: string, readonly code: string, readonly status = 200) {
    super(message);
  }
}

const REQUEST_TIMEOUT_MS = 60_000;

export function encodeArg(v: HranaArg): ProtoValue {
  if (v === null) return { type: "null" };
  switch (typeof v) {
    case "number":
      return Number.isSafeInteger(v) ? { type: "integer", value: String(v) } : { type: "float", value: v };
    case "bigint":
      return { type: "integer", value: v.toString() };
    case "boolean":
      return { type: "integer", value: v ? "1" : "0" };
    case "string":
      return { type: "text", value: v };
    default:
      return { type: "blob", base64: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  }
}

export function decodeValue(v: ProtoValue): unknown {
  switch (v.type) {
    case "null":
      return null;
    case "integer": {
      const n = Number(v.value);
      return Number.isSafeInteger(n) ? n : BigInt(v.value);
    }
    case "float":
      return v.value;
    case "text":
      return v.value;
    case "blob":
      return Buffer.from(v.base64, "base64");
  }
}

function stmt(sql: string, args: readonly HranaArg[]): ProtoStmt {
  return { sql, args: args.map(encodeArg), want_rows: true };
}

function rowsOf(r: ProtoStmtResult): Rows {
  return r.rows.map((row) => row.map(decodeValue));
}

function failure(e: ProtoError): HranaClientError {
  return new HranaClientError(e.message, e.code ?? "UNKNOWN");
}

/** One client connection: a keep-alive socket of its own, one request in flight at a time. */
export class HranaClient implements BenchConnection {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private readonly host: string;
  private readonly port: number;
  private readonly path: string;

  constructor(url: string) {
    const u = new URL(url);
    if (u.protocol !== "http:") throw new Error(`hrana client: only http:// URLs (${url})`);
    this.host = u.hostname;
    this.port = Number(u.port || 80);
    this.path = `${u.pathname.replace(/\/$/, "")}/v2/pipeline`;
  }

  /** One `POST /v2/pipeline`: the results in request order and the baton for the next request. */
  async pipeline(baton: string | null, requests: readonly ProtoRequest[]): Promise<PipelineResponse> {
    const body = JSON.stringify({ baton, requests });
    const { status, text } = await this.post(body, true);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new HranaClientError(`HTTP ${status}: ${text.slice(0, 200)}`, "HTTP_ERROR", status);
    }
    if (status !== 200) {
      const e = json as Partial<ProtoError>;
      throw new HranaClientError(e.message ?? `HTTP ${status}`, e.code ?? "HTTP_ERROR", status);
    }
    return json as PipelineResponse;
  }

  /** An autocommit statement: execute and close in one request. */
  async execute(sql: string, args: readonly HranaArg[] = []): Promise<Rows> {
    const res = await this.pipeline(null, [{ type: "execute", stmt: stmt(sql, args) }, { type: "close" }]);
    const r = res.results[0]!;
    if (r.type === "error") throw failure(r.error);
    return rowsOf((r.response as { result: ProtoStmtResult }).result);
  }

  /** BEGIN IMMEDIATE … COMMIT on one stream; rolled back (and the error rethrown) if `fn` throws. */
  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    let baton: string | null = null;
    let started = false;
    const run = async (sql: string, args: readonly HranaArg[]): Promise<Rows> => {
      if (!started) {
        // BEGIN and the first statement in one round trip; the statement runs only if BEGIN did.
        const res = await this.pipeline(null, [{
          type: "batch",
          batch: { steps: [{ stmt: stmt("BEGIN IMMEDIATE", []) }, { condition: { type: "ok", step: 0 }, stmt: stmt(sql, args) }] },
        }]);
        baton = res.baton;
        const r = res.results[0]!;
        if (r.type === "error") throw failure(r.error);
        const b = (r.response as { result: { step_results: Array<ProtoStmtResult | null>; step_errors: Array<ProtoError | null> } }).result;
        if (b.step_errors[0] !== null && b.step_errors[0] !== undefined) {
          // Not in a transaction: nothing to roll back, only the stream to close.
          const closing = baton;
          baton = null;
          if (closing !== null) await this.pipeline(closing, [{ type: "close" }]).catch(() => {});
          throw failure(b.step_errors[0]);
        }
        started = true;
        if (b.step_errors[1] !== null && b.step_errors[1] !== undefined) throw failure(b.step_errors[1]);
        return rowsOf(b.step_results[1]!);
      }
      const res = await this.pipeline(baton, [{ type: "execute", stmt: stmt(sql, args) }]);
      baton = res.baton;
      const r = res.results[0]!;
      if (r.type === "error") throw failure(r.error);
      return rowsOf((r.response as { result: ProtoStmtResult }).result);
    };
    const end = async (sql: "COMMIT" | "ROLLBACK"): Promise<void> => {
      const closing = baton;
      baton = null;
      if (closing === null) return;
      const res = await this.pipeline(closing, [{ type: "execute", stmt: stmt(sql, []) }, { type: "close" }]);
      const r = res.results[0]!;
      if (r.type === "error") throw failure(r.error);
    };
    try {
      const value = await fn({ execute: (sql, args = []) => run(sql, args) });
      if (started) await end("COMMIT");
      return value;
    } catch (e) {
      if (started) await end("ROLLBACK").catch(() => {});
      throw e;
    }
  }

  isRetryable(error: unknown): boolean {
    const e = error as { code?: unknown; message?: unknown };
    return /SQLITE_BUSY|SQLITE_LOCKED|database is locked/i.test(`${String(e.code ?? "")} ${String(e.message ?? "")}`);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /**
   * POSTs `body`; once more if a kept-alive socket turned out to be closed by the server before the
   * request reached it (`reusedSocket` and ECONNRESET: the request was not processed).
   */
  private post(body: string, retryStale: boolean): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const data = Buffer.from(body);
      const req = http.request({
        host: this.host, port: this.port, path: this.path, method: "POST", agent: this.agent,
        headers: { "content-type": "application/json", "content-length": data.byteLength },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", (e: NodeJS.ErrnoException) => {
        if (retryStale && req.reusedSocket && e.code === "ECONNRESET") this.post(body, false).then(resolve, reject);
        else reject(e);
      });
      req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no answer from ${this.host}:${this.port} within ${REQUEST_TIMEOUT_MS} ms`)));
      req.end(data);
    });
  }
}
