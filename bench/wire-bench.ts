/**
 * Wire micro-benchmark: one RpcClient connection to an RpcServer in a child process
 * (`wire-bench-server.ts`) that acknowledges every writeBatch at once. Measures requests/s and
 * records/s at 1, 16 and 256 records per batch, for several pipelining windows, so that the cost of the
 * RPC layer itself (framing, CRC32C of frames and records, decoding, promise plumbing, write coalescing)
 * is known apart from disks and quorums.
 *
 *     npx tsc -p . && node dist/bench/wire-bench.js [--seconds 2] [--reps 5] [--payload 64]
 *
 * Each configuration runs `--reps` times for `--seconds` after a 1 s warm-up; the median is printed,
 * with min–max (this VM is noisy: reference/sqlite-vfs.md §4 says compare medians at the 1.5× level).
 */
import { fork } from "node:child_process";
import { parseArgs } from "node:util";
import { Epoch, Lsn, PageNo, PgId, VolumeId } from "../src/core/types.js";
import { realEnv, silentLogger } from "../src/env/real.js";
import { RecordFlag, encodeRecord, type EncodedRecord } from "../src/wire/record.js";
import { RpcClient } from "../src/wire/rpc-client.js";
import { StorageClient } from "../src/wire/storage-client.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    reps: { type: "string", default: "5" },
    payload: { type: "string", default: "64" },
  },
});
const seconds = Number(args.seconds);
const reps = Number(args.reps);
const payloadBytes = Number(args.payload);

const env = realEnv({ log: silentLogger });
const key = { volumeId: VolumeId("bench-volume"), pgId: PgId(0) };
const epochs = { volumeEpoch: Epoch(1), membershipEpoch: Epoch(1) };

function batchOf(size: number): EncodedRecord[] {
  const out: EncodedRecord[] = [];
  for (let i = 0; i < size; i++) {
    const lsn = 1000 + i;
    out.push(encodeRecord({
      lsn: Lsn(lsn), epoch: Epoch(1), pageNo: PageNo(1 + (i % 500)), prevLsnInSegment: Lsn(lsn - 1),
      prevLsnOfPage: Lsn(lsn - 1), prevLsnInVolume: Lsn(lsn - 1), flags: i === size - 1 ? RecordFlag.CPL : 0,
      payload: new Uint8Array(payloadBytes).fill(i & 0xff),
    }, key));
  }
  return out;
}

interface Sender {
  writeBatch(records: readonly EncodedRecord[]): Promise<unknown>;
}

/** Keeps `window` writeBatch requests outstanding for `ms`; returns requests completed per second. */
async function run(sender: Sender, records: readonly EncodedRecord[], window: number, ms: number): Promise<number> {
  let done = 0;
  let stop = false;
  const started = env.clock.nowMs();
  const timer = env.clock.setTimer(ms, () => { stop = true; });
  const worker = async (): Promise<void> => {
    while (!stop) {
      await sender.writeBatch(records);
      done++;
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  timer.cancel();
  return done / ((env.clock.nowMs() - started) / 1000);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

async function main(): Promise<void> {
  const child = fork(new URL("./wire-bench-server.js", import.meta.url), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m) => resolve((m as { port: number }).port));
    child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  const address = { host: "127.0.0.1", port };
  const rpc = await RpcClient.connect(env, address, { role: "writer", senderId: "wire-bench", maxInFlight: 1024 });
  const storage = new StorageClient(env, address, { role: "writer", senderId: "wire-bench-sc", maxInFlight: 1024 });
  await storage.connect();
  const senders: Record<string, Sender> = {
    RpcClient: { writeBatch: (records) => rpc.request({ type: "writeBatch", key, epochs, writerVdl: Lsn(0), records }) },
    StorageClient: { writeBatch: (records) => storage.writeBatch({ key, epochs, writerVdl: Lsn(0), records }) },
  };

  console.log(`# wire-bench: node ${process.version}, ${seconds} s × ${reps} reps per row, ${payloadBytes} B record payloads, server maxInFlight ${rpc.peer.maxInFlight}`);
  console.log("");
  console.log("| client | records/batch | window | frame bytes | requests/s (median, min–max) | records/s | MB/s of frames |");
  console.log("|---|---|---|---|---|---|---|");
  const configs: [string, number, number][] = [];
  for (const batch of [1, 16, 256]) for (const window of [1, 16, 256]) configs.push(["RpcClient", batch, window]);
  configs.push(["StorageClient", 1, 256], ["StorageClient", 16, 256]);
  for (const [name, batch, window] of configs) {
    const records = batchOf(batch);
    const frameBytes = 8 + 5 + 1 + 1 + key.volumeId.length + 1 + 2 + 1 + 2 + records.reduce((n, r) => n + r.bytes.byteLength, 0);
    const sender = senders[name]!;
    await run(sender, records, window, 1000); // warm-up: JIT and socket buffers
    const rates: number[] = [];
    for (let i = 0; i < reps; i++) rates.push(await run(sender, records, window, seconds * 1000));
    const m = median(rates);
    console.log(`| ${name} | ${batch} | ${window} | ${frameBytes} | ${fmt(m)} (${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))}) | ${fmt(m * batch)} | ${(m * frameBytes / 1e6).toFixed(1)} |`);
  }
  rpc.close();
  storage.close();
  child.disconnect();
}

await main();
