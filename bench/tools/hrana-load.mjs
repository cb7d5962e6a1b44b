// A closed-loop Hrana load on a Borealis endpoint, with nothing but node:http: N clients, each one
// request at a time, for S seconds. Used by cpu-per-op.sh; prints one line of ops/s and latency.
//   node bench/tools/hrana-load.mjs URL setup            create table kv (id, k, v) and one row
//   node bench/tools/hrana-load.mjs URL w|r CLIENTS SECS  single-row INSERTs or point SELECTs
import http from "node:http";

const [url, mode, clientsArg = "1", secsArg = "5"] = process.argv.slice(2);
if (url === undefined || !["setup", "w", "r"].includes(mode ?? "")) {
  process.stderr.write("usage: hrana-load.mjs URL setup | URL w|r CLIENTS SECS\n");
  process.exit(2);
}
const target = new URL("/v2/pipeline", url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
const integer = (n) => ({ type: "integer", value: String(n) });

function pipeline(sql, args = []) {
  const body = JSON.stringify({ baton: null, requests: [{ type: "execute", stmt: { sql, args, want_rows: true } }, { type: "close" }] });
  return new Promise((resolve, reject) => {
    const req = http.request(target, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => (res.statusCode === 200 && !text.includes('"type":"error"') ? resolve() : reject(new Error(text.slice(0, 300)))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

if (mode === "setup") {
  await pipeline("CREATE TABLE IF NOT EXISTS kv (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)");
  await pipeline("INSERT OR IGNORE INTO kv (id, k, v) VALUES (5, 5, 'five')");
  process.exit(0);
}
const clients = Number(clientsArg), secs = Number(secsArg);
let nextId = 1_000_000 * (1 + Math.floor(Math.random() * 1000));
const latencies = [];
const end = performance.now() + secs * 1000;
await Promise.all(Array.from({ length: clients }, async () => {
  while (performance.now() < end) {
    const t = performance.now();
    if (mode === "w") await pipeline("INSERT INTO kv (id, k, v) VALUES (?, 1, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')", [integer(nextId++)]);
    else await pipeline("SELECT v FROM kv WHERE id = ?", [integer(5)]);
    latencies.push(performance.now() - t);
  }
}));
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(2);
process.stdout.write(`${mode} c=${clients}: ${Math.round(latencies.length / secs)} ops/s ${latencies.length} ops p50 ${q(0.5)} ms p99 ${q(0.99)} ms\n`);
process.exit(0);
