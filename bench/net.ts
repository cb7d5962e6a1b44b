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
import { createServer, Socket } from "node:net";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
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
 * ports n, n+1, …). Random bases in the dynamic-ish range, bounded attempts.
 */
export async function freePortRange(count: number, attempts = 50): Promise<number> {
  for (let a = 0; a < attempts; a++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
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
