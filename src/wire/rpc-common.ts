/**
 * What the RPC server and client agree on besides the bytes: default limits, which response answers
 * which request, and what a handshake tells each side about the other. Kept apart from `messages.ts`
 * (the format) because these are rules of the conversation, not of the encoding.
 */
import type { RequestType, ResponseType } from "./messages.js";
import { PROTOCOL_VERSION } from "./messages.js";

/** Versions this build speaks. A peer's [minVersion, maxVersion] must overlap it. */
export const SUPPORTED_VERSIONS = { min: 1, max: PROTOCOL_VERSION } as const;

/** Requests a server runs at once on one connection; beyond it answers TOO_MANY_IN_FLIGHT. */
export const DEFAULT_MAX_IN_FLIGHT = 256;
/** Client side: requests waiting for a free in-flight slot before `request` refuses more. */
export const DEFAULT_MAX_QUEUED = 4096;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
/** A frame that has started arriving must finish within this (slowloris). */
export const DEFAULT_PARTIAL_FRAME_TIMEOUT_MS = 30_000;
/** A new connection must say hello within this. Connections that have said hello may idle forever. */
export const DEFAULT_HELLO_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_CONNECTIONS = 1024;
/**
 * Bytes a server queues to a peer that does not read its responses before giving up on the peer
 * (CVE-2025-21605: unbounded output buffers). A client that respects its window never comes close.
 */
export const DEFAULT_MAX_BUFFERED_OUTPUT_BYTES = 64 * 1024 * 1024;

/** The response type that answers each request successfully; anything else but `error` is a protocol error. */
export const EXPECTED_RESPONSE: Readonly<Record<RequestType, ResponseType>> = {
  hello: "helloOk",
  ping: "pong",
  nodeStatus: "nodeStatus",
  openSegment: "segmentState",
  writeBatch: "writeAck",
  getPage: "page",
  getSegmentState: "segmentState",
  setEpoch: "segmentState",
  readRecords: "records",
  annul: "segmentState",
};

/** What `hello` told a client about the server it reached. */
export interface PeerInfo {
  readonly nodeId: string;
  readonly az: string;
  /** The negotiated protocol version. */
  readonly version: number;
  /** Largest request body the server accepts. */
  readonly maxFrameBytes: number;
  /** Requests the server runs at once on this connection. */
  readonly maxInFlight: number;
}

/** Request ids are u32 and never 0: 0 means "no request" in an error about an unreadable frame. */
export function nextRequestId(id: number): number {
  return id >= 0xffff_ffff ? 1 : id + 1;
}
