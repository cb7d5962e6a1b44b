/**
 * JSON text for Hrana responses. `JSON.stringify` is the fast path; it cannot spell ±Infinity (it
 * writes `null`, which @libsql/client rejects as a float), so a `NonFiniteFloat` makes it bail out and
 * the response is written again by a small writer that spells them `1e999` / `-1e999` (every JSON
 * parser reads those back as ±Infinity). Infinite floats are rare, so the slow path costs nothing
 * in practice.
 */
import { NonFiniteFloat } from "./values.js";

class NeedsSlowPath extends Error {}

// Throwing from toJSON aborts JSON.stringify: cheaper than a replacer on every key of every response.
Object.defineProperty(NonFiniteFloat.prototype, "toJSON", {
  value(): never {
    throw new NeedsSlowPath();
  },
});

export function stringifyJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof NeedsSlowPath)) throw e;
    const out: string[] = [];
    write(value, out);
    return out.join("");
  }
}

function write(v: unknown, out: string[]): void {
  if (v === null || v === undefined) {
    out.push("null");
  } else if (typeof v === "string" || typeof v === "boolean") {
    out.push(JSON.stringify(v));
  } else if (typeof v === "number") {
    out.push(Number.isFinite(v) ? String(v) : "null");
  } else if (v instanceof NonFiniteFloat) {
    out.push(v.value > 0 ? "1e999" : "-1e999");
  } else if (Array.isArray(v)) {
    out.push("[");
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.push(",");
      write(v[i], out);
    }
    out.push("]");
  } else if (typeof v === "object") {
    out.push("{");
    let first = true;
    for (const [key, item] of Object.entries(v)) {
      if (item === undefined) continue;
      if (!first) out.push(",");
      first = false;
      out.push(JSON.stringify(key), ":");
      write(item, out);
    }
    out.push("}");
  } else {
    // bigint, function, symbol: response builders never produce them.
    throw new TypeError(`cannot write ${typeof v} as JSON`);
  }
}
