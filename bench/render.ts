/**
 * Re-renders report.md and charts/ from a results.json, without measuring anything: for changes to
 * the report's layout, and to refresh a committed report after such a change.
 *
 *   node dist/bench/render.js [bench/results/results.json] [out dir, default: the json's directory]
 */
import { readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { RESULTS_SCHEMA, type ResultsFile } from "./results.js";
import { terminalSummary, writeReport } from "./report.js";

const [jsonArg, outArg] = process.argv.slice(2);
const json = resolve(jsonArg ?? "bench/results/results.json");
const results = JSON.parse(readFileSync(json, "utf8")) as ResultsFile;
if (results.schema !== RESULTS_SCHEMA) {
  process.stderr.write(`render: ${json} is not a ${RESULTS_SCHEMA} results file (schema ${String(results.schema)})\n`);
  process.exit(2);
}
const outDir = resolve(outArg ?? dirname(json));
// Run from the repository's root, as `npm run` does.
const files = writeReport(outDir, results, relative(outDir, resolve("bench", "README.md")));
process.stdout.write(`${terminalSummary(results)}\n\nwrote ${files.markdown} and ${files.charts.length} charts\n`);
