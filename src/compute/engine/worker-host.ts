/**
 * The main thread's handle on one SQL worker: starts it (compiled `sql-worker.js` next to this
 * module, so it works from any outDir), sends requests and matches replies, serves its page bridge
 * from the `VolumeIO`, and passes the writer's MTRs and any fatal error up to the engine.
 *
 * Requests in flight per worker are bounded (the engine bounds sessions and their queues; this is the
 * last line). A worker that dies fails every request in flight.
 */
import { Worker } from "node:worker_threads";
import { assert } from "../../core/assert.js";
import { BorealisError } from "../../core/errors.js";
import type { MiniTransaction } from "../volume-io.js";
import { PageBridgeServer, type PageReader } from "./page-bridge.js";
import type { WorkerInit, WorkerMessage, WorkerReply, WorkerRequest } from "./worker-protocol.js";

type DistributiveOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type RequestBody = DistributiveOmit<WorkerRequest, "id">;

export interface WorkerHostEvents {
  readonly onMtr: (mtr: MiniTransaction) => void;
  readonly onLog: (event: string, fields: Record<string, unknown>) => void;
  /**
   * A reply carries a commit: called as the reply arrives, in arrival (= LSN) order, so that the
   * engine chains acknowledgements in LSN order whatever the sessions do next.
   */
  readonly onCommit: (commitLsn: number) => Promise<void>;
  readonly onFatal: (error: Error) => void;
  readonly readPage: PageReader;
}

/** A reply, and for a reply that committed, the acknowledgement of that commit (invariant 5). */
export interface Answer {
  readonly reply: WorkerReply;
  readonly ack: Promise<void> | null;
}

interface Pending {
  readonly resolve: (r: Answer) => void;
  readonly reject: (e: unknown) => void;
}

export class WorkerHost {
  readonly role: WorkerInit["role"];
  readonly index: number;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | null = null;
  private closing = false;
  /** Requests of this tick, sent as one message when the tick's microtasks are done. */
  private outbox: WorkerRequest[] = [];

  private constructor(
    private readonly worker: Worker,
    private readonly bridge: PageBridgeServer,
    init: WorkerInit,
    private readonly maxInFlight: number,
  ) {
    this.role = init.role;
    this.index = init.workerIndex;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  static start(init: WorkerInit, events: WorkerHostEvents, maxInFlight: number): Promise<WorkerHost> {
    const worker = new Worker(new URL("./sql-worker.js", import.meta.url), { workerData: init, name: `borealis-sql-${init.role}-${init.workerIndex}` });
    const bridge = new PageBridgeServer(init.bridgeSab, events.readPage);
    const host = new WorkerHost(worker, bridge, init, maxInFlight);
    return new Promise<WorkerHost>((resolve, reject) => {
      let ready = false;
      worker.on("message", (msg: WorkerMessage) => {
        switch (msg.type) {
          case "ready":
            ready = true;
            resolve(host);
            return;
          case "batch":
            for (const item of msg.items) {
              if (item.type === "mtr") {
                events.onMtr(item.mtr);
                continue;
              }
              if (item.type === "log") {
                events.onLog(item.event, item.fields);
                continue;
              }
              const p = host.pending.get(item.reply.id);
              assert(p !== undefined, `reply to an unknown request ${item.reply.id}`);
              host.pending.delete(item.reply.id);
              let ack: Promise<void> | null = null;
              if (item.reply.commitLsn > 0) {
                ack = events.onCommit(item.reply.commitLsn);
                ack.catch(() => undefined); // observed by the session; never an unhandled rejection
              }
              p.resolve({ reply: item.reply, ack });
            }
            return;
          case "fatal": {
            const e = new Error(`SQL ${init.role} worker ${init.workerIndex} failed: ${msg.message}`);
            if (msg.stack !== undefined) e.stack = msg.stack;
            host.fail(e);
            if (!ready) reject(e);
            else events.onFatal(e);
            return;
          }
        }
      });
      worker.on("error", (e) => {
        host.fail(e);
        if (!ready) reject(e);
        else events.onFatal(e);
      });
      worker.on("exit", (code) => {
        bridge.stop();
        if (host.closing) return;
        const e = new Error(`SQL ${init.role} worker ${init.workerIndex} exited with code ${code}`);
        host.fail(e);
        if (!ready) reject(e);
        else events.onFatal(e);
      });
    });
  }

  request(body: RequestBody): Promise<Answer> {
    if (this.dead !== null) return Promise.reject(new BorealisError("INTERNAL", this.dead.message, {}, { cause: this.dead }));
    if (this.pending.size >= this.maxInFlight) {
      return Promise.reject(new BorealisError("TOO_MANY_IN_FLIGHT", `${this.pending.size} requests in flight to the SQL ${this.role}`));
    }
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Flushed after the event loop's current I/O phase, not per request: every request that arrived
      // on any connection in this round goes to the worker in one postMessage (one thread wake-up).
      if (this.outbox.length === 0) setImmediate(() => this.flush());
      this.outbox.push({ ...body, id } as WorkerRequest);
    });
  }

  private flush(): void {
    const batch = this.outbox;
    this.outbox = [];
    if (this.dead === null) this.worker.postMessage(batch);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.bridge.stop();
    this.fail(new Error("engine closed"));
    await this.worker.terminate();
  }

  private fail(e: Error): void {
    if (this.dead === null) this.dead = e;
    for (const p of this.pending.values()) p.reject(new BorealisError("INTERNAL", e.message, {}, { cause: e }));
    this.pending.clear();
  }
}
