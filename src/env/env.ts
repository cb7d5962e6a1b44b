/**
 * The environment: everything a protocol core may ask of the world.
 *
 * Storage nodes, the writer's commit path, recovery and the control plane never read `Date.now`,
 * `Math.random`, `node:fs` or `node:net` themselves; they get an `Env`. Production passes `realEnv()`
 * (`real.ts`); the deterministic simulator passes one whose clock, randomness, disk and network are all
 * driven by one seed (`src/sim/`). The same protocol code runs in both (STYLE.md, rule 2).
 */
import type { HostPort } from "../core/types.js";

export interface Env {
  readonly clock: Clock;
  readonly random: Random;
  readonly disk: Disk;
  readonly network: Network;
  readonly log: Logger;
}

// ---------------------------------------------------------------------------------------------- clock

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin: for timeouts, latencies and leases. */
  nowMs(): number;
  /** Wall-clock milliseconds since the Unix epoch: for logs and backups only, never for ordering. */
  wallMs(): number;
  /** Calls `fn` after `ms` milliseconds unless cancelled. */
  setTimer(ms: number, fn: () => void): Timer;
  sleep(ms: number): Promise<void>;
}

// --------------------------------------------------------------------------------------------- random

export interface Random {
  /** Uniform in [0, 1). */
  float(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

// ----------------------------------------------------------------------------------------------- disk

/**
 * A file opened for reading and writing at explicit offsets. `sync` is `fdatasync`: when it resolves,
 * every write that resolved before it was called is durable. When it rejects, the caller must assume
 * that some of those writes are lost even if a later `sync` succeeds (fsyncgate): storage nodes fence
 * themselves (invariant 2).
 */
export interface DiskFile {
  readonly path: string;
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, bytes: Uint8Array | readonly Uint8Array[]): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface Disk {
  /** Opens (and with `create`, creates) a file; the directory entry is durable only after `syncDir`. */
  open(path: string, options: { create: boolean }): Promise<DiskFile>;
  exists(path: string): Promise<boolean>;
  /** Names (not paths) of the entries in a directory, sorted. */
  list(dir: string): Promise<string[]>;
  mkdirp(dir: string): Promise<void>;
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** fsyncs a directory so that creations, renames and removals in it are durable. */
  syncDir(dir: string): Promise<void>;
  /** Writes a whole small file durably and atomically: temp file, fsync, rename, fsync directory. */
  writeFileAtomic(path: string, bytes: Uint8Array): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
}

// -------------------------------------------------------------------------------------------- network

/**
 * A byte stream with TCP's guarantees: ordered, no duplicates, may end at any byte. Framing is the
 * caller's (`src/wire/frame.ts`), so the simulator can split frames anywhere, as TCP does.
 */
export interface Connection {
  /** A label for logs: the peer's address. */
  readonly remote: string;
  /** Queues bytes; returns false when the peer is not reading fast enough (back-pressure). */
  write(chunks: Uint8Array | readonly Uint8Array[]): boolean;
  onData(handler: (bytes: Uint8Array) => void): void;
  /** Called once when the stream ends for any reason; `error` is set when it ended abnormally. */
  onClose(handler: (error?: Error) => void): void;
  /** Called when a `write` that returned false has drained. */
  onDrain(handler: () => void): void;
  /** Ends the stream immediately; queued bytes may be lost. */
  destroy(error?: Error): void;
}

export interface Listener {
  readonly address: HostPort;
  close(): Promise<void>;
}

export interface Network {
  listen(address: HostPort, onConnection: (connection: Connection) => void): Promise<Listener>;
  connect(address: HostPort, options?: { timeoutMs?: number }): Promise<Connection>;
}

// -------------------------------------------------------------------------------------------- logging

export type LogLevel = "debug" | "info" | "warn" | "error";

/** Structured logs: an event name in kebab-case and fields; the sink decides the format. */
export interface Logger {
  debug(event: string, fields?: Record<string, unknown>): void;
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line, e.g. `{ node: "n1" }`. */
  child(fields: Record<string, unknown>): Logger;
}
