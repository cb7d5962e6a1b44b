/**
 * Hrana over HTTP, JSON encoding: the request bodies of `POST /v2/pipeline`, `/v3/pipeline` and
 * `/v3/cursor`, checked and converted into typed values before anything runs (HRANA_3_SPEC.md,
 * "Hrana over HTTP"; what @libsql/client 0.17/0.18 actually sends is in DESIGN.md's reference
 * `peers.md` §3).
 *
 * A body that is not a well-formed request — wrong JSON types, a batch condition naming a step that has
 * not run yet, both or neither of `sql` and `sql_id` — is rejected as a whole with PROTOCOL_ERROR
 * (HTTP 400) and nothing in it runs: a half-executed pipeline would be worse than none. A request whose
 * `type` we do not know is different: the spec lets servers grow new request types, so it becomes an
 * error result for that one request and the rest of the pipeline runs.
 *
 * Unknown fields are ignored (the spec's forward-compatibility rule), e.g. `replication_index`.
 * v2 and v3 bodies are parsed alike: `get_autocommit` and the `is_autocommit` condition (v3 only in
 * sqld) are accepted on /v2 too; a v2 client never sends them, so accepting them costs nothing.
 */
import type { NamedArg, SqlValue } from "../compute/sql-engine.js";
import { HranaError } from "./errors.js";
import { decodeValue, type IntegralFloats } from "./values.js";

export interface ParseLimits {
  /** Requests in one pipeline. */
  readonly maxRequests: number;
  /** Steps in one batch. */
  readonly maxBatchSteps: number;
  /** Nesting of batch conditions (not/and/or); bounds the recursion that evaluates them. */
  readonly maxConditionDepth: number;
  readonly integralFloats: IntegralFloats;
}

/** A statement: exactly one of `sql` and `sqlId` is set. */
export interface StmtRequest {
  readonly sql: string | undefined;
  readonly sqlId: number | undefined;
  readonly args: readonly SqlValue[];
  readonly namedArgs: readonly NamedArg[];
  readonly wantRows: boolean;
}

export type BatchCond =
  | { readonly type: "ok"; readonly step: number }
  | { readonly type: "error"; readonly step: number }
  | { readonly type: "not"; readonly cond: BatchCond }
  | { readonly type: "and"; readonly conds: readonly BatchCond[] }
  | { readonly type: "or"; readonly conds: readonly BatchCond[] }
  | { readonly type: "is_autocommit" };

export interface BatchStep {
  readonly condition: BatchCond | undefined;
  readonly stmt: StmtRequest;
}

export interface SqlRef {
  readonly sql: string | undefined;
  readonly sqlId: number | undefined;
}

export type StreamRequest =
  | { readonly type: "close" }
  | { readonly type: "execute"; readonly stmt: StmtRequest }
  | { readonly type: "batch"; readonly steps: readonly BatchStep[] }
  | { readonly type: "sequence"; readonly sql: SqlRef }
  | { readonly type: "describe"; readonly sql: SqlRef }
  | { readonly type: "store_sql"; readonly sqlId: number; readonly sql: string }
  | { readonly type: "close_sql"; readonly sqlId: number }
  | { readonly type: "get_autocommit" }
  /** A request type this server does not know; answered with an error result. */
  | { readonly type: "unknown"; readonly name: string };

export interface PipelineRequest {
  readonly baton: string | null;
  readonly requests: readonly StreamRequest[];
}

export interface CursorRequest {
  readonly baton: string | null;
  readonly steps: readonly BatchStep[];
}

// ---------------------------------------------------------------------------------------------- parse

export function parsePipelineBody(body: unknown, limits: ParseLimits): PipelineRequest {
  const obj = object(body, "body");
  const baton = batonField(obj["baton"]);
  const raw = obj["requests"];
  if (!Array.isArray(raw)) throw bad("body.requests: expected an array");
  if (raw.length > limits.maxRequests) {
    throw bad(`body.requests: ${raw.length} requests in one pipeline; the limit is ${limits.maxRequests}`);
  }
  const requests = raw.map((r, i) => parseStreamRequest(r, `requests[${i}]`, limits));
  return { baton, requests };
}

export function parseCursorBody(body: unknown, limits: ParseLimits): CursorRequest {
  const obj = object(body, "body");
  return { baton: batonField(obj["baton"]), steps: parseBatch(obj["batch"], "batch", limits) };
}

function parseStreamRequest(json: unknown, where: string, limits: ParseLimits): StreamRequest {
  const r = object(json, where);
  const type = r["type"];
  switch (type) {
    case "close":
      return { type };
    case "execute":
      return { type, stmt: parseStmt(r["stmt"], `${where}.stmt`, limits) };
    case "batch":
      return { type, steps: parseBatch(r["batch"], `${where}.batch`, limits) };
    case "sequence":
    case "describe":
      return { type, sql: parseSqlRef(r, where) };
    case "store_sql": {
      const sql = r["sql"];
      if (typeof sql !== "string") throw bad(`${where}.sql: expected a string`);
      return { type, sqlId: int32(r["sql_id"], `${where}.sql_id`), sql };
    }
    case "close_sql":
      return { type, sqlId: int32(r["sql_id"], `${where}.sql_id`) };
    case "get_autocommit":
      return { type };
    default:
      if (typeof type !== "string") throw bad(`${where}.type: expected a string`);
      return { type: "unknown", name: type };
  }
}

function parseBatch(json: unknown, where: string, limits: ParseLimits): BatchStep[] {
  const b = object(json, where);
  const raw = b["steps"];
  if (!Array.isArray(raw)) throw bad(`${where}.steps: expected an array`);
  if (raw.length > limits.maxBatchSteps) {
    throw bad(`${where}.steps: ${raw.length} steps in one batch; the limit is ${limits.maxBatchSteps}`);
  }
  return raw.map((s, i) => {
    const stepWhere = `${where}.steps[${i}]`;
    const step = object(s, stepWhere);
    const c = step["condition"];
    return {
      condition: c === undefined || c === null ? undefined : parseCond(c, `${stepWhere}.condition`, i, 0, limits),
      stmt: parseStmt(step["stmt"], `${stepWhere}.stmt`, limits),
    };
  });
}

/** `stepIndex`: a condition may only look at steps before its own (they are the only ones that ran). */
function parseCond(json: unknown, where: string, stepIndex: number, depth: number, limits: ParseLimits): BatchCond {
  if (depth >= limits.maxConditionDepth) {
    throw bad(`${where}: conditions nested deeper than ${limits.maxConditionDepth}`);
  }
  const c = object(json, where);
  const type = c["type"];
  switch (type) {
    case "ok":
    case "error": {
      const step = c["step"];
      if (typeof step !== "number" || !Number.isInteger(step) || step < 0 || step >= stepIndex) {
        throw bad(`${where}.step: must name an earlier step (0 ≤ step < ${stepIndex})`);
      }
      return { type, step };
    }
    case "not":
      return { type, cond: parseCond(c["cond"], `${where}.cond`, stepIndex, depth + 1, limits) };
    case "and":
    case "or": {
      const conds = c["conds"];
      if (!Array.isArray(conds)) throw bad(`${where}.conds: expected an array`);
      return { type, conds: conds.map((x, i) => parseCond(x, `${where}.conds[${i}]`, stepIndex, depth + 1, limits)) };
    }
    case "is_autocommit":
      return { type };
    default:
      throw bad(`${where}.type: unknown condition type ${JSON.stringify(type)}`);
  }
}

function parseStmt(json: unknown, where: string, limits: ParseLimits): StmtRequest {
  const s = object(json, where);
  const { sql, sqlId } = parseSqlRef(s, where);

  const rawArgs = s["args"];
  let args: SqlValue[] = [];
  if (rawArgs !== undefined && rawArgs !== null) {
    if (!Array.isArray(rawArgs)) throw bad(`${where}.args: expected an array`);
    args = rawArgs.map((a, i) => decodeValue(a, `${where}.args[${i}]`, limits.integralFloats));
  }

  const rawNamed = s["named_args"];
  let namedArgs: NamedArg[] = [];
  if (rawNamed !== undefined && rawNamed !== null) {
    if (!Array.isArray(rawNamed)) throw bad(`${where}.named_args: expected an array`);
    namedArgs = rawNamed.map((a, i) => {
      const argWhere = `${where}.named_args[${i}]`;
      const arg = object(a, argWhere);
      const name = arg["name"];
      if (typeof name !== "string" || name.length === 0) throw bad(`${argWhere}.name: expected a non-empty string`);
      return { name, value: decodeValue(arg["value"], `${argWhere}.value`, limits.integralFloats) };
    });
  }

  const wantRows = s["want_rows"];
  if (wantRows !== undefined && wantRows !== null && typeof wantRows !== "boolean") {
    throw bad(`${where}.want_rows: expected a boolean`);
  }
  return { sql, sqlId, args, namedArgs, wantRows: wantRows !== false };
}

function parseSqlRef(obj: Record<string, unknown>, where: string): SqlRef {
  const rawSql = obj["sql"];
  const rawId = obj["sql_id"];
  const hasSql = rawSql !== undefined && rawSql !== null;
  const hasId = rawId !== undefined && rawId !== null;
  if (hasSql === hasId) throw bad(`${where}: exactly one of "sql" and "sql_id" is required`);
  if (hasSql) {
    if (typeof rawSql !== "string") throw bad(`${where}.sql: expected a string`);
    return { sql: rawSql, sqlId: undefined };
  }
  return { sql: undefined, sqlId: int32(rawId, `${where}.sql_id`) };
}

// ---------------------------------------------------------------------------------------------- utils

function object(json: unknown, where: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad(`${where}: expected an object`);
  return json as Record<string, unknown>;
}

function batonField(raw: unknown): string | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "string") throw bad("body.baton: expected a string or null");
  return raw;
}

function int32(raw: unknown, where: string): number {
  if (typeof raw !== "number" || !Number.isInteger(raw) || raw < -(2 ** 31) || raw >= 2 ** 31) {
    throw bad(`${where}: expected a 32-bit integer`);
  }
  return raw;
}

function bad(message: string): HranaError {
  return new HranaError("PROTOCOL_ERROR", message);
}
