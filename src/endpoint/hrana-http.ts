/**
 * The client endpoint: libSQL's Hrana protocol over HTTP (JSON), so that `@libsql/client` — and the
 * ORMs built on it — work unchanged with `createClient({ url: "http://host:port" })` (DESIGN.md,
 * "Client interface"; HRANA_3_SPEC.md; `peers.md` §3 for what the client actually sends).
 *
 * This module is the HTTP adapter: routes, body limits, status codes, response bytes. The protocol
 * lives beside it: request parsing (`protocol.ts`), values (`values.ts`), streams and batons
 * (`streams.ts`), requests and batches (`requests.ts`, `batch.ts`), errors (`errors.ts`).
 *
 * Routes:
 *   GET  /v2, /v3                        200: the versions we speak (JSON encoding)
 *   GET  /v3-protobuf                    404: Protobuf is not implemented. @libsql/client probes this
 *                                        (0.17; 0.18 goes straight to v2) and falls back to
 *                                        `POST /v2/pipeline` on any non-2xx answer
 *   POST /v2/pipeline, /v3/pipeline      a pipeline of stream requests (JSON)
 *   POST /v3/cursor                      a batch whose results come back as newline-delimited JSON
 *                                        (@libsql/client over HTTP does not use it — it speaks v2 —
 *                                        but other Hrana 3 clients may)
 *   GET  /health                         200/503 + JSON from the `health` callback
 *   GET  /metrics                        200 + JSON counters from the `metrics` callback (404 without one)
 *   GET  /version                        JSON: server name and version, protocols
 *
 * Bounds: request bodies (`maxBodyBytes`, 413), requests per pipeline, steps per batch, condition
 * nesting, stored SQL per stream, open streams, open connections, response size (`maxResponseBytes`: a result that would
 * exceed it becomes a RESPONSE_TOO_LARGE error), time to receive a request (`requestTimeoutMs`), the
 * health callback's time. Malformed bodies get 400 and nothing in them runs; no request can crash the
 * server (every handler's failure becomes a response and a log line).
 *
 * Whole-request errors are `application/json` `{message, code}`: @libsql/client turns them into a
 * `LibsqlError` with that `code` (it matches the content type exactly, so no `; charset`).
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { SqlEngine } from "../compute/sql-engine.js";
import { BorealisError } from "../core/errors.js";
import type { HostPort } from "../core/types.js";
import { formatHostPort } from "../core/types.js";
import type { Env, Logger } from "../env/env.js";
import { HranaError, toProtoError } from "./errors.js";
import { stringifyJson } from "./json.js";
import { parseCursorBody, parsePipelineBody, type ParseLimits } from "./protocol.js";
import { RequestHandler, type StreamResult } from "./requests.js";
import { StreamTable } from "./streams.js";
import type { IntegralFloats } from "./values.js";

export interface HealthReport {
  readonly ok: boolean;
  readonly [key: string]: unknown;
}

export interface HranaServerOptions {
  /** Where to listen; port 0 picks a free port (see `HranaServer.address`). */
  readonly listen: HostPort;
  /** Idle time after which a stream expires and its transaction rolls back. Default 10 000 (sqld's). */
  readonly idleStreamTimeoutMs?: number;
  /** Open streams (each holds an engine session). Default 512. */
  readonly maxStreams?: number;
  /** Request body limit. Default 10 MiB. */
  readonly maxBodyBytes?: number;
  /** Response body limit. Default 32 MiB. */
  readonly maxResponseBytes?: number;
  /** Default 1000. */
  readonly maxRequestsPerPipeline?: number;
  /** Default 10 000. */
  readonly maxBatchSteps?: number;
  /** SQL texts a stream may store with `store_sql`: count (default 50, sqld's) and total bytes (default 1 MiB). */
  readonly maxStoredSql?: number;
  readonly maxStoredSqlBytes?: number;
  /** Open HTTP connections (keep-alive ones included). Default 4096. */
  readonly maxConnections?: number;
  /** Time allowed to receive a whole request. Default 30 000. */
  readonly requestTimeoutMs?: number;
  /** How integral floats are bound; see `values.ts`. Default "integer". */
  readonly integralFloats?: IntegralFloats;
  /** Answers `GET /health`; `ok: false` gives 503. Default: always ok. */
  readonly health?: () => HealthReport | Promise<HealthReport>;
  /** Time allowed to the `health` and `metrics` callbacks. Default 2000. */
  readonly healthTimeoutMs?: number;
  /** Answers `GET /metrics` (JSON, cumulative counters); without it the route is 404. */
  readonly metrics?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Reported by `GET /version`. */
  readonly version?: string;
  /** Sent as `base_url` to make streams sticky to this server (null: the client keeps its URL). */
  readonly baseUrl?: string | null;
}

export interface HranaServer {
  readonly address: HostPort;
  /** `http://host:port`, for `createClient({ url })`. */
  readonly url: string;
  /** Open streams right now. */
  streamCount(): number;
  /** Stops accepting requests, lets running ones finish, closes every stream (rolling back). */
  close(): Promise<void>;
}

export const HRANA_DEFAULTS = {
  idleStreamTimeoutMs: 10_000,
  expiredRetentionMs: 300_000,
  maxStreams: 512,
  maxBodyBytes: 10 * 1024 * 1024,
  maxResponseBytes: 32 * 1024 * 1024,
  maxRequestsPerPipeline: 1000,
  maxBatchSteps: 10_000,
  maxConditionDepth: 64,
  maxStoredSql: 50,
  maxStoredSqlBytes: 1024 * 1024,
  requestTimeoutMs: 30_000,
  maxConnections: 4096,
  healthTimeoutMs: 2_000,
} as const;

const JSON_TYPE = "application/json";

export async function startHranaServer(env: Env, engine: SqlEngine, options: HranaServerOptions): Promise<HranaServer> {
  const log = env.log.child({ component: "hrana-http" });
  const maxBodyBytes = options.maxBodyBytes ?? HRANA_DEFAULTS.maxBodyBytes;
  const maxResponseBytes = options.maxResponseBytes ?? HRANA_DEFAULTS.maxResponseBytes;
  const idleTimeoutMs = options.idleStreamTimeoutMs ?? HRANA_DEFAULTS.idleStreamTimeoutMs;
  const maxStreams = options.maxStreams ?? HRANA_DEFAULTS.maxStreams;
  const limits: ParseLimits = {
    maxRequests: options.maxRequestsPerPipeline ?? HRANA_DEFAULTS.maxRequestsPerPipeline,
    maxBatchSteps: options.maxBatchSteps ?? HRANA_DEFAULTS.maxBatchSteps,
    maxConditionDepth: HRANA_DEFAULTS.maxConditionDepth,
    integralFloats: options.integralFloats ?? "integer",
  };
  const streams = new StreamTable(env, engine, {
    idleTimeoutMs,
    maxStreams,
    expiredRetentionMs: HRANA_DEFAULTS.expiredRetentionMs,
    maxExpiredRemembered: maxStreams * 8,
    maxStoredSql: options.maxStoredSql ?? HRANA_DEFAULTS.maxStoredSql,
    maxStoredSqlBytes: options.maxStoredSqlBytes ?? HRANA_DEFAULTS.maxStoredSqlBytes,
  }, log);
  const handler = new RequestHandler(streams, log);
  const baseUrl = options.baseUrl ?? null;
  const inFlight = new Set<Promise<void>>();
  let closing = false;

  // ------------------------------------------------------------------------------------------ routes

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    const method = req.method === "HEAD" ? "GET" : req.method;
    switch (path) {
      case "/":
      case "/v2":
      case "/v3":
        if (method !== "GET") return methodNotAllowed(res, "GET");
        return sendText(res, 200, "This is Borealis: Hrana over HTTP, versions 2 and 3, JSON encoding\n");
      case "/v2/pipeline":
      case "/v3/pipeline":
        if (method !== "POST") return methodNotAllowed(res, "POST");
        return pipeline(req, res);
      case "/v3/cursor":
        if (method !== "POST") return methodNotAllowed(res, "POST");
        return cursor(req, res);
      case "/health":
        if (method !== "GET") return methodNotAllowed(res, "GET");
        return health(res);
      case "/metrics":
        if (method !== "GET") return methodNotAllowed(res, "GET");
        return metrics(req, res);
      case "/version":
        if (method !== "GET") return methodNotAllowed(res, "GET");
        return sendJson(res, 200, { server: "borealis", version: options.version ?? "unknown", protocols: ["hrana2", "hrana3"], encodings: ["json"] });
      default:
        // Includes /v3-protobuf and its /pipeline and /cursor: a 404 makes @libsql/client use v2 JSON.
        drain(req);
        return sendError(res, new HranaError("NOT_FOUND", `No endpoint ${req.method} ${path}`));
    }
  }

  async function pipeline(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readJsonBody(req, res);
    if (body === undefined) return;
    const request = parsePipelineBody(body, limits);
    const stream = streams.acquire(request.baton);
    const results: string[] = [];
    let baton: string | null;
    try {
      let bytes = 0;
      for (const r of request.requests) {
        // Strictly in order: each request sees the effects of the ones before it.
        let text = stringifyJson(await handler.handle(stream, r));
        // Counted in JSON characters (≈ bytes: the text is mostly ASCII). A result that does not fit
        // is replaced by an error; smaller results after it may still fit.
        if (bytes + text.length > maxResponseBytes) text = tooLarge(maxResponseBytes);
        bytes += text.length;
        results.push(text);
      }
    } finally {
      baton = streams.release(stream);
    }
    const head = `{"baton":${JSON.stringify(baton)},"base_url":${JSON.stringify(baseUrl)},"results":[`;
    send(res, 200, JSON_TYPE, head + results.join(",") + "]}");
  }

  async function cursor(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readJsonBody(req, res);
    if (body === undefined) return;
    const request = parseCursorBody(body, limits);
    const stream = streams.acquire(request.baton);
    let entries;
    let baton: string | null;
    try {
      // The whole batch runs before the first byte goes out: the engine returns whole results anyway,
      // and the stream must not be released (new baton in the first line) while the batch still runs.
      entries = await handler.cursorEntries(stream, request.steps);
    } finally {
      baton = streams.release(stream);
    }
    const lines = [stringifyJson({ baton, base_url: baseUrl })];
    let bytes = lines[0]!.length;
    for (const entry of entries) {
      const line = stringifyJson(entry);
      bytes += line.length + 1;
      if (bytes > maxResponseBytes) {
        lines.push(stringifyJson({ type: "error", error: toProtoError(new HranaError("RESPONSE_TOO_LARGE", `The response would exceed ${maxResponseBytes} bytes`)) }));
        break;
      }
      lines.push(line);
    }
    // sqld sends the JSON cursor as text/plain, one JSON value per line.
    send(res, 200, "text/plain", lines.join("\n") + "\n");
  }

  async function health(res: http.ServerResponse): Promise<void> {
    let report: HealthReport = { ok: true };
    if (options.health !== undefined) {
      const timeoutMs = options.healthTimeoutMs ?? HRANA_DEFAULTS.healthTimeoutMs;
      let timer: { cancel(): void } | undefined;
      try {
        report = await Promise.race([
          Promise.resolve().then(options.health),
          new Promise<HealthReport>((_, reject) => {
            timer = env.clock.setTimer(timeoutMs, () => reject(new Error(`health check took longer than ${timeoutMs} ms`)));
          }),
        ]);
      } catch (e) {
        report = { ok: false, error: e instanceof Error ? e.message : String(e) };
      } finally {
        timer?.cancel();
      }
    }
    const { ok, ...rest } = report;
    sendJson(res, ok && !closing ? 200 : 503, { status: ok && !closing ? "ok" : "unavailable", ...rest, streams: streams.size });
  }

  async function metrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const collect = options.metrics;
    if (collect === undefined) {
      drain(req);
      return sendError(res, new HranaError("NOT_FOUND", "No metrics on this endpoint"));
    }
    const timeoutMs = options.healthTimeoutMs ?? HRANA_DEFAULTS.healthTimeoutMs;
    let timer: { cancel(): void } | undefined;
    try {
      const report = await Promise.race([
        Promise.resolve().then(collect),
        new Promise<never>((_, reject) => {
          timer = env.clock.setTimer(timeoutMs, () => reject(new Error(`metrics took longer than ${timeoutMs} ms`)));
        }),
      ]);
      sendJson(res, 200, report);
    } catch (e) {
      sendJson(res, 500, { message: `metrics: ${e instanceof Error ? e.message : String(e)}`, code: "INTERNAL" });
    } finally {
      timer?.cancel();
    }
  }

  // -------------------------------------------------------------------------------------------- body

  /**
   * Reads and parses a JSON body, or answers 413/400 itself and returns undefined. The size is checked
   * against Content-Length before anything is read, and again as chunks arrive (chunked bodies).
   */
  function readJsonBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const declared = Number(req.headers["content-length"] ?? NaN);
      if (Number.isFinite(declared) && declared > maxBodyBytes) {
        refuseTooLarge(req, res);
        resolve(undefined);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      req.on("data", (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        if (size > maxBodyBytes) {
          done = true;
          chunks.length = 0;
          refuseTooLarge(req, res, size);
          resolve(undefined);
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => {
        if (done) return;
        done = true;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks, size).toString("utf8"));
        } catch (e) {
          reject(new HranaError("PROTOCOL_ERROR", `Request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`));
          return;
        }
        resolve(body);
      });
      req.on("error", (e) => {
        if (done) return;
        done = true;
        reject(e);
      });
    });
  }

  /** `received`: body bytes already read (and dropped) before the body was found too large. */
  function refuseTooLarge(req: http.IncomingMessage, res: http.ServerResponse, received = 0): void {
    // Read (and drop) what the client is still sending, up to two bodies' worth in all, and answer
    // only once it has all arrived: the connection closes after a 413, and a client still writing its
    // body when it closes sees EPIPE or ECONNRESET instead of our answer (fetch/undici in another
    // process did, nearly every time). A client sending more than that is not waiting for answers:
    // reset it.
    let dropped = received;
    req.removeAllListeners("data");
    req.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > 2 * maxBodyBytes) req.socket.destroy();
    });
    req.once("end", () => {
      res.setHeader("connection", "close");
      sendError(res, new HranaError("REQUEST_TOO_LARGE", `Request body exceeds the limit of ${maxBodyBytes} bytes`));
    });
    req.resume();
  }

  // ---------------------------------------------------------------------------------------- plumbing

  const server = http.createServer((req, res) => {
    if (closing) {
      drain(req);
      sendError(res, new HranaError("SHUTTING_DOWN"));
      return;
    }
    const p = route(req, res).catch((e: unknown) => {
      if (e instanceof HranaError) {
        drain(req);
        sendError(res, e);
        return;
      }
      if (e instanceof BorealisError) {
        // E.g. the engine refusing a new session: retryable ones are "try again later" (503).
        drain(req);
        sendJson(res, e.retryable ? 503 : 500, { message: e.message, code: e.code });
        return;
      }
      log.error("request-failed", { method: req.method, url: req.url, error: e });
      drain(req);
      sendError(res, new HranaError("INTERNAL", `internal error: ${e instanceof Error ? e.message : String(e)}`));
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  });
  server.maxConnections = options.maxConnections ?? HRANA_DEFAULTS.maxConnections;
  server.requestTimeout = options.requestTimeoutMs ?? HRANA_DEFAULTS.requestTimeoutMs;
  server.headersTimeout = Math.min(server.requestTimeout, 10_000);
  server.on("clientError", (err, socket) => {
    // Unparseable HTTP: answer if the socket still can, never throw.
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    else socket.destroy();
    log.debug("client-error", { error: err });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.listen.port, options.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const address: HostPort = { host: options.listen.host, port: bound.port };
  const url = `http://${formatHostPort(address)}`;
  log.info("hrana-listening", { url, idleStreamTimeoutMs: idleTimeoutMs, maxStreams });

  return {
    address,
    url,
    streamCount: () => streams.size,
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.all([...inFlight]);
      await streams.shutdown();
      server.closeAllConnections();
      await stopped;
      log.info("hrana-stopped", { url });
    },
  };
}

// ------------------------------------------------------------------------------------------- helpers

function pathOf(rawUrl: string | undefined): string {
  const url = rawUrl ?? "/";
  const q = url.indexOf("?");
  let path = q < 0 ? url : url.slice(0, q);
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return path;
}

function tooLarge(limit: number): string {
  const result: StreamResult = {
    type: "error",
    error: { message: `The response would exceed ${limit} bytes; fetch fewer rows per request`, code: "RESPONSE_TOO_LARGE" },
  };
  return JSON.stringify(result);
}

/** Discards an unread request body so that the connection can be reused. */
function drain(req: http.IncomingMessage): void {
  if (!req.complete) req.resume();
}

function send(res: http.ServerResponse, status: number, contentType: string, body: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON_TYPE, JSON.stringify(value));
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  send(res, status, "text/plain", text);
}

function sendError(res: http.ServerResponse, e: HranaError): void {
  sendJson(res, e.status, { message: e.message, code: e.code });
}

function methodNotAllowed(res: http.ServerResponse, allow: string): void {
  res.setHeader("allow", allow);
  sendError(res, new HranaError("METHOD_NOT_ALLOWED", `Use ${allow} here`));
}
