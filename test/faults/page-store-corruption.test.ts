/**
 * Bytes flipped at rest in a storage node's page store (LMDB's data.mdb) are caught, never served
 * (test plan §13, invariant 9). Regression test for a bug `npm run faults` found (register workload,
 * seed 9, corrupt nemesis: the final reads after a writer restart saw stale registers and
 * `PRAGMA integrity_check` failed): LMDB keeps no checksum of its own branch pages, and a flipped
 * byte in one misroutes lookups and range reads to a neighbouring leaf. Every value found there still
 * passes its checksum, so `GetPage` quietly built an older version of the page (about one trial in
 * four here). Fix: the node checks the store's structure when it opens and refuses to serve a damaged
 * one (`PageStore.verifyStructure`), and a diff record whose page backlink is not the version built so
 * far is refused at read and materialization time.
 *
 * Each trial runs in a child process (`page-store-trial.ts`): a damaged file may crash the process
 * that opens it, which is a refusal too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const TRIAL = fileURLToPath(new URL("./page-store-trial.js", import.meta.url));
const TRIALS = Number(process.env["CORRUPT_TRIALS"] ?? 24);

function runTrial(seed: number): Promise<{ outcome: string; wrong: string[]; code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve, reject) => {
    const code = `import(${JSON.stringify(TRIAL)}).then((m) => m.pageStoreTrial(${seed}))`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    child.stderr.on("data", () => {}); // LMDB complains on stderr about damaged pages
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line === undefined) {
        // Died before reporting: the damaged store crashed the process that opened it.
        resolve({ outcome: "crashed", wrong: [], code, signal, out });
        return;
      }
      const r = JSON.parse(line) as { outcome: string; wrong: string[] };
      resolve({ ...r, code, signal, out });
    });
  });
}

test(`bytes flipped in a stopped node's data.mdb: every page read is right or refused (${TRIALS} trials)`, { timeout: 600_000 }, async (t) => {
  const outcomes: Record<string, number> = {};
  const wrong: string[] = [];
  for (let seed = 1; seed <= TRIALS; seed++) {
    const r = await runTrial(seed);
    outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    if (r.outcome === "wrong") wrong.push(`seed ${seed}: ${r.wrong.slice(0, 3).join("; ")}`);
  }
  t.diagnostic(`outcomes: ${JSON.stringify(outcomes)}`);
  assert.deepEqual(wrong, [], `pages served wrong after corruption at rest:\n${wrong.join("\n")}`);
  assert.ok((outcomes["refused-open"] ?? 0) + (outcomes["refused-reads"] ?? 0) + (outcomes["crashed"] ?? 0) > 0, "some corruption was caught");
});
