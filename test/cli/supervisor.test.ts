import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { realClock } from "../../src/env/real.js";
import { Supervisor, type SupervisorEvent } from "../../src/cli/supervisor.js";
import { MAIN_JS } from "./helpers.js";

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "borealis-sup-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function nodeScript(key: string, dir: string, script: string) {
  return { key, label: `child ${key}`, command: process.execPath, args: ["-e", script], logFile: path.join(dir, `${key}.log`) };
}

const until = async (cond: () => boolean, timeoutMs: number, what: string): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("a crashing child is restarted with growing backoff, its output kept; stop ends the loop", async (t) => {
  const dir = await tempDir(t);
  const events: SupervisorEvent[] = [];
  const sup = new Supervisor([nodeScript("crash", dir, "console.error('boom: no disk'); process.exit(3)")], {
    clock: realClock, backoff: { initialMs: 50, maxMs: 200 }, onEvent: (e) => events.push(e),
  });
  sup.start();
  await until(() => sup.status("crash").exits >= 4, 10_000, "four exits");
  await sup.stop();
  const exits = events.filter((e) => e.type === "exited");
  assert.deepEqual(exits.slice(0, 4).map((e) => e.type === "exited" && e.restartInMs), [50, 100, 200, 200], "capped doubling");
  assert.ok(exits.slice(0, 4).every((e) => e.type === "exited" && e.code === 3));
  const s = sup.status("crash");
  assert.equal(s.running, false);
  assert.deepEqual(s.tail, ["boom: no disk"], "the tail shows the last run's output");
  const startsAtStop = s.starts;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(sup.status("crash").starts, startsAtStop, "no restart after stop");
  const log = await readFile(path.join(dir, "crash.log"), "utf8");
  assert.ok((log.match(/boom: no disk/g) ?? []).length >= 4, "every run's output is in the log file");
});

test("a child that printed its ready line before crashing restarts after the shortest delay every time", async (t) => {
  const dir = await tempDir(t);
  const events: SupervisorEvent[] = [];
  const sup = new Supervisor([
    { ...nodeScript("served", dir, "console.log('serving on 1234'); setTimeout(() => process.exit(1), 20)"), readyLine: /^serving on / },
    { ...nodeScript("loop", dir, "console.log('starting'); process.exit(1)"), readyLine: /^serving on / },
  ], { clock: realClock, backoff: { initialMs: 50, maxMs: 400 }, onEvent: (e) => events.push(e) });
  sup.start();
  await until(() => sup.status("served").exits >= 4 && sup.status("loop").exits >= 4, 10_000, "four exits each");
  await sup.stop();
  const delays = (key: string) => events.filter((e) => e.type === "exited" && e.key === key).slice(0, 4).map((e) => e.type === "exited" && e.restartInMs);
  assert.deepEqual(delays("served"), [50, 50, 50, 50], "it was serving: no crash loop");
  assert.deepEqual(delays("loop"), [50, 100, 200, 400], "never ready: a crash loop backs off");
});

test("stop: SIGTERM first, SIGKILL for a child that ignores it", async (t) => {
  const dir = await tempDir(t);
  const polite = "process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); setInterval(() => {}, 1000); console.log('up');";
  const stubborn = "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); setInterval(() => {}, 1000); console.log('up');";
  const sup = new Supervisor([nodeScript("polite", dir, polite), nodeScript("stubborn", dir, stubborn)], {
    clock: realClock, stopTimeoutMs: 500,
  });
  sup.start();
  await until(() => sup.status("polite").tail.includes("up") && sup.status("stubborn").tail.includes("up"), 10_000, "both children up");
  const pids = [sup.status("polite").pid, sup.status("stubborn").pid];
  assert.ok(pids.every((p) => typeof p === "number"));
  const started = Date.now();
  await sup.stop();
  assert.ok(Date.now() - started >= 450, "waited for the stop timeout before SIGKILL");
  assert.deepEqual(sup.status("polite").lastExit, { code: 0, signal: null });
  assert.deepEqual(sup.status("stubborn").lastExit, { code: null, signal: "SIGKILL" });
  assert.ok(sup.status("stubborn").tail.includes("ignoring SIGTERM"));
  for (const pid of pids) assert.throws(() => process.kill(pid!, 0), "the process is gone");
});

test("a child of `borealis up` stops on its own when its parent's IPC channel closes", async (t) => {
  const dir = await tempDir(t);
  const child = spawn(process.execPath, [MAIN_JS, "control-plane", "--data", dir, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  t.after(() => { child.kill("SIGKILL"); });
  let stdout = "";
  child.stdout!.on("data", (b: Buffer) => { stdout += b.toString(); });
  // 'exit' and the end of stdout, not 'close': after a parent-side disconnect() Node never emits 'close'.
  const stdoutEnded = new Promise<void>((r) => child.stdout!.on("end", () => r()));
  const exited = Promise.all([new Promise<number | null>((r) => child.on("exit", (code) => r(code))), stdoutEnded]).then(([code]) => code);
  await until(() => /ready on/.test(stdout), 10_000, "control plane ready");
  child.disconnect(); // what the child sees when `borealis up` dies without stopping it
  assert.equal(await exited, 0);
  assert.match(stdout, /control plane stopped/);
});
