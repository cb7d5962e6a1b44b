/**
 * The installed version of a client library, for the report. Read from the package's own
 * package.json, found by walking up from its resolved entry point (some packages, such as
 * @libsql/client, do not export `./package.json`).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

export function packageVersion(name: string): string {
  try {
    let dir = dirname(require.resolve(name));
    // Bounded by the depth of the path.
    for (let i = 0; i < 10; i++) {
      const pkg = join(dir, "package.json");
      if (existsSync(pkg)) {
        const json = JSON.parse(readFileSync(pkg, "utf8")) as { name?: string; version?: string };
        if (json.name === name) return json.version ?? "?";
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  } catch {
    // Not resolvable from here: say so rather than fail the bench.
  }
  return "?";
}
