import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { freePort, freePortRange, runCli, startCli } from "./helpers.js";

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-cli-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test("borealis --help lists every command and exits 0", async () => {
  for (const args of [["--help"], ["-h"], [], ["help"]]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, args.join(" "));
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${c.name} `, "m"));
  }
});

test("every command's --help and `borealis help CMD` print every flag with its default and meaning", async () => {
  for (const c of COMMANDS) {
    const r = await runCli([c.name, "--help"]);
    assert.equal(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assert.equal(r.stderr, "");
    assert.match(r.stdout, new RegExp(`^Usage: borealis ${c.name}`));
    for (const [name, f] of Object.entries(c.flags)) {
      const line = r.stdout.split("\n").find((l) => l.trimStart().startsWith(`--${name}`));
      assert.ok(line !== undefined, `${c.name} --help lists --${name}`);
      assert.ok(line.includes(f.description), `${c.name} --${name} has its meaning`);
      const dflt = f.required ? "(required)" : f.default !== undefined ? `(default: ${String(f.default)})`
        : f.defaultText !== undefined ? `(default: ${f.defaultText})` : f.type === "boolean" ? "(default: off)" : "(optional)";
      assert.ok(line.includes(dflt), `${c.name} --${name} shows ${dflt}: ${line}`);
    }
    assert.match(r.stdout, /-h, --help/);
    const viaHelp = await runCli(["help", c.name]);
    assert.equal(viaHelp.code, 0);
    assert.equal(viaHelp.stdout, r.stdout);
  }
});

test("an unknown flag exits 2 with one line and a pointer to --help", async () => {
  for (const c of COMMANDS) {
    const r = await runCli([c.name, "--no-such-flag"]);
    assert.equal(r.code, 2, `${c.name}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.deepEqual(r.stderr.trimEnd().split("\n"), [
      `borealis ${c.name}: unknown flag --no-such-flag`, `see borealis ${c.name} --help`,
    ]);
  }
});

test("missing, empty and malformed flags, unknown commands: exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [["control-plane"], /^borealis control-plane: missing required flag --data DIR\nsee borealis control-plane --help\n$/],
    [["control-plane", "--data"], /--data needs a value/],
    [["control-plane", "--data", "x", "--listen", "nope"], /invalid --listen: expected HOST:PORT/],
    [["control-plane", "--data", "x", "--listen", "0.0.0.0:7070"], /not a loopback address/],
    [["storage-node", "--id", "n1", "--az", "a", "--data", "d"], /missing required flag --listen/],
    [["storage-node", "--id", "bad id", "--az", "a", "--data", "d", "--listen", "127.0.0.1:0"], /invalid --id: node id must be/],
    [["status", "--json=yes"], /--json takes no value/],
    [["status", "--timeout-ms", "soon"], /--timeout-ms must be an integer/],
    [["status", "extra"], /unexpected argument "extra"/],
    [["up", "--storage-base-port", "65535"], /--storage-base-port must be an integer in \[1, 65530\]/],
    [["frobnicate"], /^borealis: unknown command "frobnicate"\nsee borealis --help\n$/],
    [["--json"], /unknown flag --json/],
    [["help", "frobnicate"], /unknown command/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("control-plane runs as a process, answers /health and the API, and stops cleanly on SIGTERM", async (t) => {
  const dir = await tempDir(t);
  const cp = await startCli(["control-plane", "--data", dir, "--listen", "127.0.0.1:0"], /control plane ready on (http:\/\/127\.0\.0\.1:\d+)/);
  t.after(() => { cp.child.kill("SIGKILL"); });
  const url = cp.match[1]!;
  const health = await fetch(`${url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { ok: true, service: "borealis-control-plane" });
  const hb = await fetch(`${url}/v1/nodes/heartbeat`, { method: "POST", body: JSON.stringify({ nodeId: "n1", az: "a", address: "127.0.0.1:7101" }) });
  assert.equal(hb.status, 200);

  assert.ok(cp.child.kill("SIGTERM"));
  const r = await cp.exited;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /control plane stopped/);
  // The registration was durable.
  const kv = JSON.parse(await readFile(path.join(dir, "kv.json"), "utf8")) as { entries: { k: string }[] };
  assert.deepEqual(kv.entries.map((e) => e.k), ["nodes/n1"]);
});

test("operating errors exit 1 with a clear line and no stack trace (unless BOREALIS_DEBUG=1)", async (t) => {
  const port = await freePort();
  const r = await runCli(["status", "--control-plane", `http://127.0.0.1:${port}`, "--timeout-ms", "1000"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^borealis status: cannot reach the control plane at http://127.0.0.1:${port}`));
  assert.doesNotMatch(r.stderr, /\n\s+at /);

  const debug = await runCli(["status", "--control-plane", `http://127.0.0.1:${port}`], { env: { ...process.env, BOREALIS_DEBUG: "1" } });
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /\n\s+at /, "BOREALIS_DEBUG=1 prints the stack");

  // A control plane port already taken.
  const dir = await tempDir(t);
  const cp = await startCli(["control-plane", "--data", path.join(dir, "a"), "--listen", "127.0.0.1:0"], /ready on http:\/\/127\.0\.0\.1:(\d+)/);
  t.after(() => { cp.child.kill("SIGKILL"); });
  const taken = await runCli(["control-plane", "--data", path.join(dir, "b"), "--listen", `127.0.0.1:${cp.match[1]}`]);
  assert.equal(taken.code, 1);
  assert.match(taken.stderr, /address is in use/);
  cp.child.kill("SIGTERM");
  assert.equal((await cp.exited).code, 0);
});

test("up: DIR/cluster.json pins the cluster's ports; contradicting flags are refused", async (t) => {
  const dir = await tempDir(t);
  const base = await freePortRange(7);
  // Start and stop it at once: whether or not storage nodes can run yet, the layout is written first.
  const first = await runCli(["up", "--data", dir, "--control-plane-port", String(base), "--storage-base-port", String(base + 1), "--ready-timeout-ms", "100"], { timeoutMs: 30_000 });
  assert.notEqual(first.code, 2, first.stderr);
  const layout = JSON.parse(await readFile(path.join(dir, "cluster.json"), "utf8")) as { controlPlane: { port: number }; nodes: { id: string; az: string; port: number }[] };
  assert.equal(layout.controlPlane.port, base);
  assert.deepEqual(layout.nodes.map((n) => [n.id, n.az, n.port]), ["a", "a", "b", "b", "c", "c"].map((az, i) => [`n${i + 1}`, az, base + 1 + i]));

  const again = await runCli(["up", "--data", dir, "--control-plane-port", String(base + 100)]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /cluster\.json fixes the control plane port at \d+, not \d+/);
});
