/**
 * Hrana values ↔ engine values (`SqlValue`), and the JSON encoding of statement results.
 *
 * Hrana's JSON `Value` (HRANA_3_SPEC.md, "Values"):
 *   {type:"null"} | {type:"integer", value:"<i64 in decimal>"} | {type:"float", value:<number>}
 *   | {type:"text", value:<string>} | {type:"blob", base64:<string>}
 *
 * Decisions:
 * - Integers travel as decimal strings and become `bigint`s, so every 64-bit value round-trips exactly.
 *   A JSON number that is a safe integer is accepted too (lenient; sqld accepts only strings).
 * - **Integral floats.** @libsql/client sends every JS `number` as a float, even `5` (bigint and boolean
 *   go as integers); sqld binds them as REAL. SQLite then behaves as if the application had written
 *   `5.0`: `'id-' || ?` gives "id-5.0", `json_array(?)` gives "[5.0]", `typeof(?)` is 'real', an
 *   untyped column stores 5.0. JavaScript has no other way to say "the integer 5", so by default a
 *   float that is integral and within ±(2^53 − 1) (exactly representable both ways; -0 excluded) is bound
 *   as an INTEGER. Columns with REAL affinity still store 5.0, comparisons are unchanged (SQLite compares
 *   5 and 5.0 equal), `LIMIT ?` works either way. `integralFloats: "float"` restores sqld's behaviour.
 * - Blobs: we accept base64 with or without padding and emit it without (as sqld does: STANDARD_NO_PAD).
 * - Floats SQLite can produce but JSON cannot spell (±Infinity; NaN is NULL in SQLite) are written as
 *   `1e999` / `-1e999`, which every JSON parser reads back as ±Infinity (see `json.ts`). JSON.stringify
 *   would write `null`, which @libsql/client rejects as a malformed float.
 */
import type { ColumnInfo, SqlValue, StatementResult } from "../compute/sql-engine.js";
import { HranaError } from "./errors.js";

export type IntegralFloats = "integer" | "float";

export type ProtoValue =
  | { type: "null" }
  | { type: "integer"; value: string }
  | { type: "float"; value: number | NonFiniteFloat }
  | { type: "text"; value: string }
  | { type: "blob"; base64: string };

export interface ProtoStmtResult {
  cols: { name: string | null; decltype: string | null }[];
  rows: ProtoValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
}

/** A float JSON cannot spell; `json.ts` writes it as ±1e999. */
export class NonFiniteFloat {
  constructor(readonly value: number) {}
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^[+-]?[0-9]{1,19}$/;
const BASE64_TEXT = /^[A-Za-z0-9+/]*$/;

const NULL_VALUE: SqlValue = Object.freeze({ type: "null" });

// --------------------------------------------------------------------------------------------- decode

/** Decodes one JSON `Value`; `where` names it in error messages ("requests[0].stmt.args[2]"). */
export function decodeValue(json: unknown, where: string, integralFloats: IntegralFloats): SqlValue {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new HranaError("PROTOCOL_ERROR", `${where}: expected a Value object`);
  }
  const v = json as Record<string, unknown>;
  switch (v["type"]) {
    case "null":
      return NULL_VALUE;
    case "integer":
      return { type: "integer", value: decodeInteger(v["value"], where) };
    case "float": {
      const f = v["value"];
      if (typeof f !== "number") throw new HranaError("PROTOCOL_ERROR", `${where}: float value must be a JSON number`);
      if (integralFloats === "integer" && Number.isSafeInteger(f) && !Object.is(f, -0)) {
        return { type: "integer", value: BigInt(f) };
      }
      return { type: "float", value: f };
    }
    case "text": {
      const t = v["value"];
      if (typeof t !== "string") throw new HranaError("PROTOCOL_ERROR", `${where}: text value must be a string`);
      return { type: "text", value: t };
    }
    case "blob":
      return { type: "blob", value: decodeBase64(v["base64"], where) };
    default:
      throw new HranaError("PROTOCOL_ERROR", `${where}: unknown Value type ${JSON.stringify(v["type"])}`);
  }
}

function decodeInteger(raw: unknown, where: string): bigint {
  if (typeof raw === "number" && Number.isSafeInteger(raw)) return BigInt(raw);
  if (typeof raw !== "string" || !INTEGER_TEXT.test(raw)) {
    throw new HranaError("PROTOCOL_ERROR", `${where}: integer value must be a decimal string`);
  }
  const n = BigInt(raw);
  if (n < I64_MIN || n > I64_MAX) {
    throw new HranaError("PROTOCOL_ERROR", `${where}: integer ${raw} does not fit in 64 bits`);
  }
  return n;
}

function decodeBase64(raw: unknown, where: string): Uint8Array {
  if (typeof raw !== "string") throw new HranaError("PROTOCOL_ERROR", `${where}: blob base64 must be a string`);
  // Buffer.from(…, "base64") skips characters it does not know; check the alphabet first so that a
  // corrupted blob is an error rather than silently different bytes.
  let end = raw.length;
  while (end > 0 && raw.charCodeAt(end - 1) === 0x3d /* = */ && raw.length - end < 2) end--;
  const body = end === raw.length ? raw : raw.slice(0, end);
  if (!BASE64_TEXT.test(body) || body.length % 4 === 1) {
    throw new HranaError("PROTOCOL_ERROR", `${where}: blob is not valid base64`);
  }
  const buf = Buffer.from(body, "base64");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

// --------------------------------------------------------------------------------------------- encode

export function encodeValue(v: SqlValue): ProtoValue {
  switch (v.type) {
    case "null":
      return { type: "null" };
    case "integer":
      return { type: "integer", value: v.value.toString() };
    case "float":
      if (Number.isFinite(v.value)) return { type: "float", value: v.value };
      // NaN never leaves SQLite (it becomes NULL); map it the same way should an engine produce one.
      if (Number.isNaN(v.value)) return { type: "null" };
      return { type: "float", value: new NonFiniteFloat(v.value) };
    case "text":
      return { type: "text", value: v.value };
    case "blob":
      return { type: "blob", base64: encodeBase64(v.value) };
  }
}

export function encodeBase64(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  let end = b64.length;
  while (end > 0 && b64.charCodeAt(end - 1) === 0x3d) end--;
  return end === b64.length ? b64 : b64.slice(0, end);
}

export function encodeColumns(columns: readonly ColumnInfo[]): ProtoStmtResult["cols"] {
  return columns.map((c) => ({ name: c.name, decltype: c.decltype }));
}

/** `wantRows: false` drops rows even if the engine collected them (the spec says "always reply with no rows"). */
export function encodeStmtResult(r: StatementResult, wantRows: boolean): ProtoStmtResult {
  return {
    cols: encodeColumns(r.columns),
    rows: wantRows ? r.rows.map((row) => row.map(encodeValue)) : [],
    affected_row_count: r.affectedRowCount,
    last_insert_rowid: r.lastInsertRowid === null ? null : r.lastInsertRowid.toString(),
  };
}
