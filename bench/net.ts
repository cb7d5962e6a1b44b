/**
 * Network helpers: a free loopback port for a server, and byte counting on every TCP socket a load
 * generator opens.
 *
 * Counting works below the drivers: every outgoing TCP connection goes through
 * `net.Socket.prototype.connect` — node-postgres calls it on a `new net.Socket()`, fetch (undici, under
 * @libsql/client) through `net.connect` — so the counter wraps that one method in the load generator
 * process (measurement code only; nothing in `src/` is touched) and sums `bytesRead + bytesWritten`:
 * what crossed the loopback interface for the workload, request and response, whatever the protocol.
 * (Node's `net.client.socket` diagnostics channel would be cleaner but sees only `net.connect`.)
 * Sockets that close hand their totals to an accumulator and are dropped, so the set stays as small
 * as the number of open connections.
 */
import { readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";

/** Listening ports are picked from here up to the kernel's ephemeral range. */
const LOWEST_PORT = 10_000;

/**
 * The first port of the kernel's ephemeral range (Linux: `ip_local_port_range`, 32768 by default).
 * Ports the bench hands to servers are picked below it: a port in the ephemeral range that is free
 * now can be taken, before the server binds it, by the local end of any outgoing connection on the
 * machine — a storage node starting seconds later, or a writer re-binding its port after a restart,
 * then fails with EADDRINUSE. Below the range, only another listener can collide.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > LOWEST_PORT + 1000 && low <= 65_535) return low;
  } catch {
    // Not Linux: the IANA dynamic range starts at 49152.
  }
  return 32_768;
}

/** A loopback port free right now, below the ephemeral range (see `ephemeralLow`). */
export async function freePort(): Promise<number> {
  return freePortRange(1);
}

type Connect = (this: Socket, ...args: unknown[]) => Socket;

export class SocketByteCounter {
  private readonly open = new Set<Socket>();
  private closedBytes = 0;
  private readonly original: Connect;

  /** One per process: it wraps a prototype method. */
  constructor() {
    const proto = Socket.prototype as unknown as { connect: Connect };
    const original = proto.connect;
    this.original = original;
    const track = (socket: Socket): void => this.track(socket);
    proto.connect = function (this: Socket, ...args: unknown[]): Socket {
      track(this);
      return original.apply(this, args);
    };
  }

  private track(socket: Socket): void {
    if (this.open.has(socket)) return;
    this.open.add(socket);
    socket.once("close", () => {
      this.closedBytes += socket.bytesRead + socket.bytesWritten;
      this.open.delete(socket);
    });
  }

  /** Bytes read + written on every client socket of this process so far. */
  total(): number {
    let sum = this.closedBytes;
    for (const s of this.open) sum += s.bytesRead + s.bytesWritten;
    return sum;
  }

  dispose(): void {
    (Socket.prototype as unknown as { connect: Connect }).connect = this.original;
  }
}

/**
 * A base port such that `count` consecutive loopback ports are free right now (a cluster that takes
 * ports n, n+1, …). Random bases below the ephemeral range (see `ephemeralLow`), bounded attempts.
 */
export async function freePortRange(count: number, attempts = 50): Promise<number> {
  const span = ephemeralLow() - count - LOWEST_PORT;
  for (let a = 0; a < attempts; a++) {
    const base = LOWEST_PORT + Math.floor(Math.random() * span);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await canListen(base + i);
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free ports found in ${attempts} attempts`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}
