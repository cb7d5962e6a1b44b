/** Runs the compiled `borealis` CLI as a child process, the way users do. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as net from "node:net";

/** main.js beside this test's compiled output, whatever outDir the build used. */
export const MAIN_JS = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: readonly string[], options: { timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], {
      stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd, env: options.env ?? process.env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on("data", (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`borealis ${args.join(" ")} did not finish within ${options.timeoutMs ?? 15_000} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Starts the CLI and resolves once a line of its stdout matches `ready`. */
export function startCli(args: readonly string[], ready: RegExp, options: { timeoutMs?: number; cwd?: string } = {}): Promise<{
  child: ChildProcess; match: RegExpExecArray; output: () => { stdout: string; stderr: string }; exited: Promise<RunResult>;
}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd });
    let stdout = "";
    let stderr = "";
    let done = false;
    const exited = new Promise<RunResult>((res) => child.on("close", (code, signal) => res({ code, signal, stdout, stderr })));
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill("SIGKILL");
      reject(new Error(`not ready within ${options.timeoutMs ?? 15_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.stdout!.on("data", (b: Buffer) => {
      stdout += b.toString();
      const m = ready.exec(stdout);
      if (m !== null && !done) {
        done = true;
        clearTimeout(timer);
        resolve({ child, match: m, output: () => ({ stdout, stderr }), exited });
      }
    });
    child.stderr!.on("data", (b: Buffer) => { stderr += b.toString(); });
    void exited.then((r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`exited (code ${r.code}) before it was ready\nstdout: ${r.stdout}\nstderr: ${r.stderr}`));
    });
  });
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** `count` consecutive ports that are free right now (bounded search). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const servers: net.Server[] = [];
    let ok = true;
    for (let i = 0; i < count && ok; i++) {
      const s = net.createServer();
      ok = await new Promise<boolean>((r) => {
        s.once("error", () => r(false));
        s.listen(base + i, "127.0.0.1", () => r(true));
      });
      if (ok) servers.push(s);
    }
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (ok) return base;
  }
  throw new Error("no free port range found");
}
