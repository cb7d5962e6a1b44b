/**
 * `ControlPlaneClient`: the control plane's HTTP API (`http-server.ts`) as a `ControlPlaneApi`, for
 * processes other than the control plane's own: storage nodes' heartbeats, `borealis status`, later the
 * writer. Built on the global `fetch`; every request has a timeout and every response a size bound.
 *
 * Errors come back as the `BorealisError` the server threw (same code, message and details), so callers
 * handle CONFLICT or VOLUME_NOT_FOUND the same way whether they hold the service or a client. A control
 * plane that cannot be reached is CONNECTION_CLOSED; one that does not answer in time is TIMEOUT.
 */
import { BorealisError, ErrorCodes, type ErrorCode, type ErrorDetails } from "../core/errors.js";
import { assert } from "../core/assert.js";
import type { Epoch, VolumeId } from "../core/types.js";
import type {
  ControlPlaneApi, CreateVolumeRequest, HeartbeatRequest, HeartbeatResponse, RecordRecoveryRequest, SetWriterRequest,
  StorageNodeInfo, Volume,
} from "./api.js";

export const DEFAULT_CLIENT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export interface ControlPlaneClientOptions {
  /** Per request, from sending to the last byte of the answer. Default 5000. */
  readonly timeoutMs?: number;
  /** Larger answers are refused (PROTOCOL_ERROR). Default 16 MiB. */
  readonly maxResponseBytes?: number;
}

export interface HealthReply {
  readonly ok: boolean;
  readonly service: string;
}

/** Checks a control-plane URL ("http://host:port") and returns it without a trailing slash. */
export function normalizeControlPlaneUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BorealisError("INVALID_ARGUMENT", `control plane URL "${url}" is not a URL (expected http://HOST:PORT)`);
  }
  if (parsed.protocol !== "http:" || parsed.username !== "" || parsed.search !== "" || parsed.hash !== "") {
    throw new BorealisError("INVALID_ARGUMENT", `control plane URL "${url}" must look like http://HOST:PORT`);
  }
  return parsed.origin + parsed.pathname.replace(/\/+$/, "");
}

export class ControlPlaneClient implements ControlPlaneApi {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(url: string, options: ControlPlaneClientOptions = {}) {
    this.url = normalizeControlPlaneUrl(url);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CLIENT_TIMEOUT_MS;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    assert(Number.isSafeInteger(this.timeoutMs) && this.timeoutMs > 0, "client timeout must be positive");
    assert(Number.isSafeInteger(this.maxResponseBytes) && this.maxResponseBytes > 0, "maxResponseBytes must be positive");
  }

  health(): Promise<HealthReply> {
    return this.request<HealthReply>("GET", "/health");
  }

  async listNodes(): Promise<StorageNodeInfo[]> {
    return (await this.request<{ nodes: StorageNodeInfo[] }>("GET", "/v1/nodes")).nodes;
  }

  heartbeat(request: HeartbeatRequest): Promise<HeartbeatResponse> {
    return this.request<HeartbeatResponse>("POST", "/v1/nodes/heartbeat", request);
  }

  async listVolumes(): Promise<Volume[]> {
    return (await this.request<{ volumes: Volume[] }>("GET", "/v1/volumes")).volumes;
  }

  async getVolume(volumeId: VolumeId): Promise<Volume> {
    return (await this.request<{ volume: Volume }>("GET", `/v1/volumes/${encodeURIComponent(volumeId)}`)).volume;
  }

  async createVolume(request: CreateVolumeRequest): Promise<Volume> {
    return (await this.request<{ volume: Volume }>("POST", "/v1/volumes", request)).volume;
  }

  async addProtectionGroup(volumeId: VolumeId): Promise<Volume> {
    return (await this.request<{ volume: Volume }>("POST", `/v1/volumes/${encodeURIComponent(volumeId)}/pgs`)).volume;
  }

  async bumpVolumeEpoch(volumeId: VolumeId, expected: Epoch): Promise<Epoch> {
    const path = `/v1/volumes/${encodeURIComponent(volumeId)}/epoch`;
    return (await this.request<{ volumeEpoch: Epoch }>("POST", path, { expect: expected })).volumeEpoch;
  }

  async setWriter(request: SetWriterRequest): Promise<Volume> {
    const path = `/v1/volumes/${encodeURIComponent(request.volumeId)}/writer`;
    const body = { endpoint: request.endpoint, epoch: request.epoch };
    return (await this.request<{ volume: Volume }>("PUT", path, body)).volume;
  }

  async recordRecovery(volumeId: VolumeId, request: RecordRecoveryRequest): Promise<Volume> {
    const path = `/v1/volumes/${encodeURIComponent(volumeId)}/recoveries`;
    return (await this.request<{ volume: Volume }>("POST", path, request)).volume;
  }

  // ------------------------------------------------------------------------------------------ private

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const what = `${method} ${path}`;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let response: Response;
    try {
      response = await fetch(this.url + path, {
        method,
        signal,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (e) {
      throw this.transportError(what, e);
    }
    let text: string;
    try {
      text = await this.readBounded(response);
    } catch (e) {
      throw e instanceof BorealisError ? e : this.transportError(what, e);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new BorealisError("PROTOCOL_ERROR",
        `control plane at ${this.url} answered ${what} with HTTP ${response.status} and a body that is not JSON`);
    }
    if (!response.ok) throw errorFromBody(parsed, response.status, what);
    return parsed as T;
  }

  private async readBounded(response: Response): Promise<string> {
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > this.maxResponseBytes) {
      await response.body?.cancel();
      throw new BorealisError("PROTOCOL_ERROR", `control plane answer of ${declared} bytes exceeds ${this.maxResponseBytes}`);
    }
    if (response.body === null) return "";
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > this.maxResponseBytes) {
        await reader.cancel();
        throw new BorealisError("PROTOCOL_ERROR", `control plane answer exceeds ${this.maxResponseBytes} bytes`);
      }
      chunks.push(value);
    }
    return new TextDecoder().decode(Buffer.concat(chunks, size));
  }

  private transportError(what: string, e: unknown): BorealisError {
    const name = (e as { name?: unknown }).name;
    if (name === "TimeoutError" || name === "AbortError") {
      return new BorealisError("TIMEOUT", `control plane at ${this.url} did not answer ${what} within ${this.timeoutMs} ms`, {}, { cause: e });
    }
    // fetch reports "fetch failed" and hides the reason (ECONNREFUSED …) in `cause`.
    const cause = (e as { cause?: unknown }).cause;
    const reason = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e);
    return new BorealisError("CONNECTION_CLOSED", `cannot reach the control plane at ${this.url}: ${reason}`, {}, { cause: e });
  }
}

function errorFromBody(parsed: unknown, status: number, what: string): BorealisError {
  const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code: ErrorCode = typeof error?.code === "string" && error.code in ErrorCodes ? (error.code as ErrorCode) : "INTERNAL";
  const message = typeof error?.message === "string" ? error.message : `${what} failed with HTTP ${status}`;
  const details = error?.details !== null && typeof error?.details === "object" && !Array.isArray(error.details)
    ? (error.details as ErrorDetails) : {};
  return new BorealisError(code, message, { ...details, httpStatus: status });
}
