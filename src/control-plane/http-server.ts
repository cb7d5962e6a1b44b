/**
 * The control plane's JSON API over HTTP: a thin adapter from `node:http` to a `ControlPlaneApi`.
 * Routing, body limits and error mapping live here; every decision about nodes and volumes lives in
 * `control-plane.ts`. `client.ts` is the other end.
 *
 *   GET  /health                      → { ok: true, service }
 *   GET  /v1/nodes                    → { nodes: StorageNodeInfo[] }
 *   POST /v1/nodes/heartbeat          { nodeId, az, address }            → HeartbeatResponse
 *   GET  /v1/volumes                  → { volumes: Volume[] }
 *   GET  /v1/volumes/:id              → { volume }
 *   POST /v1/volumes                  { volumeId, pageSize?, pgPages?, pgCount? } → 201 { volume }
 *   POST /v1/volumes/:id/pgs          → 201 { volume }
 *   POST /v1/volumes/:id/epoch        { expect }                          → { volumeEpoch }
 *   PUT  /v1/volumes/:id/writer       { endpoint, epoch }                 → { volume }
 *
 * Errors: `{ error: { code, message, details } }` with a BorealisError code and a matching HTTP status.
 *
 * It listens on loopback only: the API has no authentication yet (roadmap 5), and anyone who can
 * reach it can fence the writer by bumping the volume epoch.
 */
import * as http from "node:http";
import type { Env } from "../env/env.js";
import { BorealisError, type ErrorCode } from "../core/errors.js";
import { assert } from "../core/assert.js";
import { formatHostPort, type HostPort } from "../core/types.js";
import {
  parseCreateVolumeRequest, parseEpochBumpRequest, parseHeartbeatRequest, parseRecordRecoveryRequest, parseSetWriterRequest, parseVolumeId,
  type ControlPlaneApi,
} from "./api.js";

export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
export const HEALTH_SERVICE_NAME = "borealis-control-plane";

export interface ControlPlaneServerOptions {
  readonly listen: HostPort;
  /** Larger request bodies are refused with 413 before they are buffered. Default 64 KiB. */
  readonly maxBodyBytes?: number;
}

export interface RunningControlPlaneServer {
  /** The bound address (the OS picks the port when `listen.port` is 0). */
  readonly address: HostPort;
  /** `http://host:port` */
  readonly url: string;
  /** Stops accepting, closes idle and in-flight connections. */
  close(): Promise<void>;
}

/** HTTP status for each error code a handler may throw. */
export function httpStatusFor(code: ErrorCode): number {
  switch (code) {
    case "INVALID_ARGUMENT":
    case "PROTOCOL_ERROR":
      return 400;
    case "NOT_FOUND":
    case "VOLUME_NOT_FOUND":
      return 404;
    case "CONFLICT":
    case "PLACEMENT_IMPOSSIBLE":
    case "WRITER_FENCED":
    case "STALE_VOLUME_EPOCH":
    case "STALE_MEMBERSHIP_EPOCH":
      return 409;
    case "FRAME_TOO_LARGE":
      return 413;
    case "TOO_MANY_IN_FLIGHT":
    case "BACKPRESSURE":
      return 429;
    case "SHUTTING_DOWN":
      return 503;
    case "TIMEOUT":
      return 504;
    default:
      return 500;
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

// ------------------------------------------------------------------------------------------- routing

interface Reply {
  readonly status: number;
  readonly body: unknown;
}

type Handler = (api: ControlPlaneApi, params: readonly string[], body: unknown) => Promise<Reply>;

interface Route {
  readonly method: "GET" | "POST" | "PUT";
  readonly pattern: RegExp;
  readonly handler: Handler;
  /** Whether the handler reads a JSON body. */
  readonly body: boolean;
}

const ok = (body: unknown): Reply => ({ status: 200, body });

const routes: readonly Route[] = [
  { method: "GET", pattern: /^\/health$/, body: false,
    handler: async () => ok({ ok: true, service: HEALTH_SERVICE_NAME }) },
  { method: "GET", pattern: /^\/v1\/nodes$/, body: false,
    handler: async (api) => ok({ nodes: await api.listNodes() }) },
  { method: "POST", pattern: /^\/v1\/nodes\/heartbeat$/, body: true,
    handler: async (api, _p, body) => ok(await api.heartbeat(parseHeartbeatRequest(body))) },
  { method: "GET", pattern: /^\/v1\/volumes$/, body: false,
    handler: async (api) => ok({ volumes: await api.listVolumes() }) },
  { method: "POST", pattern: /^\/v1\/volumes$/, body: true,
    handler: async (api, _p, body) => ({ status: 201, body: { volume: await api.createVolume(parseCreateVolumeRequest(body)) } }) },
  { method: "GET", pattern: /^\/v1\/volumes\/([^/]+)$/, body: false,
    handler: async (api, [id]) => ok({ volume: await api.getVolume(parseVolumeId(id)) }) },
  { method: "POST", pattern: /^\/v1\/volumes\/([^/]+)\/pgs$/, body: false,
    handler: async (api, [id]) => ({ status: 201, body: { volume: await api.addProtectionGroup(parseVolumeId(id)) } }) },
  { method: "POST", pattern: /^\/v1\/volumes\/([^/]+)\/epoch$/, body: true,
    handler: async (api, [id], body) => ok({ volumeEpoch: await api.bumpVolumeEpoch(parseVolumeId(id), parseEpochBumpRequest(body)) }) },
  { method: "POST", pattern: /^\/v1\/volumes\/([^/]+)\/recoveries$/, body: true,
    handler: async (api, [id], body) => ok({ volume: await api.recordRecovery(parseVolumeId(id), parseRecordRecoveryRequest(body)) }) },
  { method: "PUT", pattern: /^\/v1\/volumes\/([^/]+)\/writer$/, body: true,
    handler: async (api, [id], body) => {
      const fields = body !== null && typeof body === "object" && !Array.isArray(body) ? body : {};
      return ok({ volume: await api.setWriter(parseSetWriterRequest({ ...fields, volumeId: id })) });
    } },
];

type Match =
  | { readonly kind: "route"; readonly route: Route; readonly params: readonly string[] }
  | { readonly kind: "no-route" }
  | { readonly kind: "wrong-method"; readonly allowed: readonly string[] };

function match(method: string, pathname: string): Match {
  const allowed: string[] = [];
  for (const route of routes) {
    const m = route.pattern.exec(pathname);
    if (m === null) continue;
    if (route.method !== method) {
      allowed.push(route.method);
      continue;
    }
    const params = m.slice(1).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new BorealisError("INVALID_ARGUMENT", `bad percent-encoding in path ${pathname}`);
      }
    });
    return { kind: "route", route, params };
  }
  return allowed.length > 0 ? { kind: "wrong-method", allowed } : { kind: "no-route" };
}

// ------------------------------------------------------------------------------------------- server

export async function startControlPlaneServer(
  env: Env, api: ControlPlaneApi, options: ControlPlaneServerOptions,
): Promise<RunningControlPlaneServer> {
  const { listen } = options;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  assert(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes > 0, "maxBodyBytes must be positive");
  if (!isLoopbackHost(listen.host)) {
    throw new BorealisError("INVALID_ARGUMENT",
      `the control plane listens on loopback only (it has no authentication yet); got ${formatHostPort(listen)}`);
  }
  const log = env.log.child({ component: "control-plane-http" });

  const server = http.createServer((req, res) => {
    handle(env, api, log, maxBodyBytes, req, res).catch((e: unknown) => {
      // handle() answers every request itself; reaching here means the socket broke mid-reply.
      log.warn("http-reply-failed", { error: e });
      res.destroy();
    });
  });
  // Bounds: slow or stuck clients cannot hold sockets or memory forever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 64;
  server.maxConnections = 256;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((e: unknown) => {
    const code = (e as { code?: unknown }).code;
    if (code === "EADDRINUSE") {
      throw new BorealisError("INVALID_ARGUMENT", `cannot listen on ${formatHostPort(listen)}: the address is in use`, {}, { cause: e });
    }
    throw e;
  });
  const bound = server.address();
  assert(bound !== null && typeof bound === "object", "a listening server has an address");
  const address: HostPort = { host: listen.host, port: bound.port };
  const url = `http://${formatHostPort(address)}`;
  log.info("control-plane-listening", { url });

  let closing: Promise<void> | undefined;
  return {
    address,
    url,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handle(
  env: Env, api: ControlPlaneApi, log: Env["log"], maxBodyBytes: number,
  req: http.IncomingMessage, res: http.ServerResponse,
): Promise<void> {
  const startMs = env.clock.nowMs();
  const method = req.method ?? "GET";
  let pathname = "/";
  let reply: Reply;
  try {
    pathname = new URL(req.url ?? "/", "http://control-plane").pathname;
    const m = match(method, pathname);
    if (m.kind === "no-route") {
      throw new BorealisError("NOT_FOUND", `no such endpoint: ${method} ${pathname}`);
    }
    if (m.kind === "wrong-method") {
      res.setHeader("allow", m.allowed.join(", "));
      reply = errorReply(405, new BorealisError("INVALID_ARGUMENT", `${method} is not allowed on ${pathname}; use ${m.allowed.join(" or ")}`));
    } else {
      const body = m.route.body ? await readJsonBody(req, maxBodyBytes) : undefined;
      if (!m.route.body) req.resume(); // discard any body we do not read, so keep-alive stays usable
      reply = await m.route.handler(api, m.params, body);
    }
  } catch (e) {
    reply = errorToReply(e);
    if (reply.status >= 500) log.error("http-request-failed", { method, path: pathname, error: e });
  }
  const text = JSON.stringify(reply.body);
  if (reply.status === 413) res.setHeader("connection", "close"); // the unread body would poison the connection
  res.writeHead(reply.status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
  log.debug("http-request", { method, path: pathname, status: reply.status, ms: Math.round(env.clock.nowMs() - startMs) });
}

/**
 * Reads at most `maxBytes` of body and parses it as JSON; an empty body is `undefined`. Past the limit
 * the rest of the body is discarded unread (not buffered) so that the 413 reply still reaches the
 * client; the connection is closed after it.
 */
async function readJsonBody(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    throw tooLarge(maxBytes);
  }
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on("data", (chunk: Buffer) => {
      if (settled) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        settled = true;
        chunks.length = 0;
        reject(tooLarge(maxBytes));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on("error", (e) => {
      if (settled) return;
      settled = true;
      reject(e);
    });
  });
  if (bytes.byteLength === 0) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new BorealisError("PROTOCOL_ERROR", "request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new BorealisError("PROTOCOL_ERROR", `request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function tooLarge(maxBytes: number): BorealisError {
  return new BorealisError("FRAME_TOO_LARGE", `request body larger than ${maxBytes} bytes`);
}

function errorReply(status: number, e: BorealisError): Reply {
  return { status, body: { error: { code: e.code, message: e.message, details: e.details } } };
}

function errorToReply(e: unknown): Reply {
  if (e instanceof BorealisError) return errorReply(httpStatusFor(e.code), e);
  // Programmer errors (assertions) and anything unexpected: the message, never a stack, goes out.
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return errorReply(500, new BorealisError("INTERNAL", message));
}

