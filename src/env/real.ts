/**
 * The production environment: the OS clock, crypto randomness, node:fs and node:net. Thin adapters with
 * no protocol logic, so that what the simulator replaces is only I/O.
 */
import { randomInt, randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { HostPort } from "../core/types.js";
import type {
  Clock, Connection, Disk, DiskFile, Env, Listener, LogLevel, Logger, Network, Random, Timer,
} from "./env.js";

export function realEnv(options: { log?: Logger } = {}): Env {
  return {
    clock: realClock,
    random: realRandom,
    disk: realDisk,
    network: realNetwork,
    log: options.log ?? consoleLogger({ level: levelFromEnv() }),
  };
}

// ---------------------------------------------------------------------------------------------- clock

export const realClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer(ms: number, fn: () => void): Timer {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
  sleep: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
};

// --------------------------------------------------------------------------------------------- random

export const realRandom: Random = {
  float: () => randomBytes(6).readUIntBE(0, 6) / 2 ** 48,
  int: (n: number) => randomInt(n),
};

// ----------------------------------------------------------------------------------------------- disk

class RealFile implements DiskFile {
  constructor(readonly path: string, private readonly handle: fsp.FileHandle) {}

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  async write(offset: number, bytes: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const chunks = bytes instanceof Uint8Array ? [bytes] : bytes;
    let position = offset;
    // writev writes every chunk at `position` onwards in one system call where it can.
    let pending = chunks.filter((c) => c.byteLength > 0);
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle.writev(pending, position);
      position += bytesWritten;
      let skip = bytesWritten;
      const rest: Uint8Array[] = [];
      for (const c of pending) {
        if (skip >= c.byteLength) { skip -= c.byteLength; continue; }
        rest.push(skip > 0 ? c.subarray(skip) : c);
        skip = 0;
      }
      pending = rest;
    }
  }

  sync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export const realDisk: Disk = {
  async open(p: string, options: { create: boolean }): Promise<DiskFile> {
    const flags = options.create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR;
    return new RealFile(p, await fsp.open(p, flags, 0o644));
  },
  async exists(p: string): Promise<boolean> {
    try {
      await fsp.access(p);
      return true;
    } catch {
      return false;
    }
  },
  async list(dir: string): Promise<string[]> {
    return (await fsp.readdir(dir)).sort();
  },
  async mkdirp(dir: string): Promise<void> {
    await fsp.mkdir(dir, { recursive: true });
  },
  remove: (p: string) => fsp.rm(p, { force: true }),
  rename: (from: string, to: string) => fsp.rename(from, to),
  async syncDir(dir: string): Promise<void> {
    const handle = await fsp.open(dir, fs.constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async writeFileAtomic(p: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${p}.tmp-${process.pid}`;
    const handle = await fsp.open(tmp, "w", 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, p);
    await realDisk.syncDir(path.dirname(p));
  },
  async readFile(p: string): Promise<Uint8Array> {
    return fsp.readFile(p);
  },
};

// -------------------------------------------------------------------------------------------- network

class SocketConnection implements Connection {
  readonly remote: string;
  private closeHandlers: ((error?: Error) => void)[] = [];
  private closed = false;
  private closeError: Error | undefined;

  constructor(private readonly socket: net.Socket) {
    this.remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    socket.setNoDelay(true);
    socket.on("error", (e) => { this.closeError ??= e; });
    socket.on("close", () => {
      this.closed = true;
      for (const h of this.closeHandlers) h(this.closeError);
      this.closeHandlers = [];
    });
  }

  write(chunks: Uint8Array | readonly Uint8Array[]): boolean {
    if (this.closed || this.socket.destroyed) return false;
    if (chunks instanceof Uint8Array) return this.socket.write(chunks);
    if (chunks.length === 1) return this.socket.write(chunks[0]!);
    // cork/uncork turns many small frames into one system call.
    this.socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c) && ok;
    this.socket.uncork();
    return ok;
  }

  onData(handler: (bytes: Uint8Array) => void): void {
    this.socket.on("data", handler);
  }

  onClose(handler: (error?: Error) => void): void {
    if (this.closed) queueMicrotask(() => handler(this.closeError));
    else this.closeHandlers.push(handler);
  }

  onDrain(handler: () => void): void {
    this.socket.on("drain", handler);
  }

  destroy(error?: Error): void {
    if (error) this.closeError ??= error;
    this.socket.destroy();
  }
}

export const realNetwork: Network = {
  listen(address: HostPort, onConnection: (connection: Connection) => void): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => onConnection(new SocketConnection(socket)));
      server.once("error", reject);
      server.listen(address.port, address.host, () => {
        server.off("error", reject);
        const bound = server.address() as net.AddressInfo;
        resolve({
          address: { host: address.host, port: bound.port },
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      });
      // Connections are closed by their owners; `close` stops accepting new ones.
    });
  },
  connect(address: HostPort, options: { timeoutMs?: number } = {}): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address.host, port: address.port });
      const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${address.host}:${address.port} timed out after ${options.timeoutMs} ms`));
      }, options.timeoutMs);
      socket.once("error", (e) => { clearTimeout(timer); reject(e); });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new SocketConnection(socket));
      });
    });
  },
};

// -------------------------------------------------------------------------------------------- logging

const levelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function levelFromEnv(): LogLevel {
  const v = process.env["BOREALIS_LOG"];
  return v === "debug" || v === "info" || v === "warn" || v === "error" ? v : "info";
}

/** One JSON object per line on stderr: `{"t":…,"level":…,"event":…,…fields}`. */
export function consoleLogger(options: { level?: LogLevel; fields?: Record<string, unknown>; write?: (line: string) => void } = {}): Logger {
  const min = levelRank[options.level ?? "info"];
  const base = options.fields ?? {};
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const emit = (level: LogLevel, event: string, fields?: Record<string, unknown>) => {
    if (levelRank[level] < min) return;
    write(JSON.stringify({ t: new Date().toISOString(), level, event, ...base, ...fields }, jsonSafe));
  };
  return {
    debug: (e, f) => emit("debug", e, f),
    info: (e, f) => emit("info", e, f),
    warn: (e, f) => emit("warn", e, f),
    error: (e, f) => emit("error", e, f),
    child: (fields) => consoleLogger({ ...options, fields: { ...base, ...fields } }),
  };
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  return value;
}

/** A logger that drops everything: for tests and benchmarks that measure, not read. */
export const silentLogger: Logger = {
  debug: () => {}, info: () => {}, warn: () => {}, error: () => {},
  child: () => silentLogger,
};
