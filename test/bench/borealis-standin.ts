/**
 * TEST ONLY: a stand-in for `borealis up` that the bench's Borealis system module can start (through
 * BOREALIS_BENCH_COMMAND), so the module's own plumbing — spawn, /health, @libsql/client over HTTP,
 * transactions and retries, byte counting, stop by process group — is tested without the real
 * cluster. It serves the Hrana endpoint over the test-only better-sqlite3 engine. Never in a report.
 *
 * argv: up --data DIR --port PORT [other flags ignored]. Without `up` (e.g. picked up by the test
 * runner) it does nothing.
 */
import { realEnv, silentLogger } from "../../src/env/real.js";
import { startHranaServer } from "../../src/endpoint/hrana-http.js";
import { betterSqliteEngine } from "../endpoint/better-sqlite3-engine.js";

const argv = process.argv.slice(2);
if (argv[0] === "up") {
  const port = Number(argv[argv.indexOf("--port") + 1]);
  const engine = betterSqliteEngine();
  const server = await startHranaServer(realEnv({ log: silentLogger }), engine, {
    listen: { host: "127.0.0.1", port },
    version: "stand-in",
  });
  const stop = async (): Promise<void> => {
    await server.close();
    await engine.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
}
