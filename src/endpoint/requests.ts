/**
 * Stream requests (execute, batch, sequence, describe, store_sql, close_sql, get_autocommit, close)
 * run against one acquired stream, turned into Hrana `StreamResult`s. No HTTP here: `hrana-http.ts`
 * parses bodies, acquires the stream, calls `handleRequest` for each request in order and writes the
 * results.
 *
 * Every request runs and gets a result even when earlier ones in the pipeline failed (the spec's rule);
 * a failure is an error *result*, never an exception out of this module.
 *
 * `BEGIN TRANSACTION READONLY` (what @libsql/client sends for `mode: "read"`) is passed to the engine
 * as is: it is libSQL syntax that stock SQLite does not parse, and rewriting it is the engine's job
 * because only the engine can make the transaction actually read-only (and read at one snapshot,
 * invariant 7). The same holds for statements whose SQL names its parameters without a prefix (Hrana
 * allows a bare `name`; the engine resolves it against the statement's parameters).
 */
import type { SqlStatement } from "../compute/sql-engine.js";
import type { Logger } from "../env/env.js";
import { runBatch, type StepOutcome } from "./batch.js";
import { HranaError, toProtoError, type ProtoError } from "./errors.js";
import type { BatchStep, SqlRef, StmtRequest, StreamRequest } from "./protocol.js";
import type { HranaStream, StreamTable } from "./streams.js";
import { encodeColumns, encodeStmtResult, encodeValue, type ProtoStmtResult, type ProtoValue } from "./values.js";

export type StreamResponse = Record<string, unknown> & { type: string };

export type StreamResult =
  | { type: "ok"; response: StreamResponse }
  | { type: "error"; error: ProtoError };

export interface ProtoBatchResult {
  step_results: (ProtoStmtResult | null)[];
  step_errors: (ProtoError | null)[];
}

export type CursorEntry =
  | { type: "step_begin"; step: number; cols: ProtoStmtResult["cols"] }
  | { type: "row"; row: ProtoValue[] }
  | { type: "step_end"; affected_row_count: number; last_insert_rowid: string | null }
  | { type: "step_error"; step: number; error: ProtoError }
  | { type: "error"; error: ProtoError };

export class RequestHandler {
  constructor(private readonly streams: StreamTable, private readonly log: Logger) {}

  async handle(stream: HranaStream, request: StreamRequest): Promise<StreamResult> {
    try {
      return { type: "ok", response: await this.run(stream, request) };
    } catch (e) {
      return { type: "error", error: this.protoError(e) };
    }
  }

  /** Runs a batch for the cursor endpoint and lays its outcome out as cursor entries. */
  async cursorEntries(stream: HranaStream, steps: readonly BatchStep[]): Promise<CursorEntry[]> {
    if (stream.state === "closed") return [{ type: "error", error: this.protoError(new HranaError("STREAM_CLOSED")) }];
    const outcomes = await this.batch(stream, steps);
    const entries: CursorEntry[] = [];
    outcomes.forEach((o, step) => {
      if (o.kind === "skipped") return;
      if (o.kind === "error") {
        entries.push({ type: "step_error", step, error: o.error });
        return;
      }
      const r = encodeStmtResult(o.result, o.wantRows);
      entries.push({ type: "step_begin", step, cols: r.cols });
      for (const row of r.rows) entries.push({ type: "row", row });
      entries.push({ type: "step_end", affected_row_count: r.affected_row_count, last_insert_rowid: r.last_insert_rowid });
    });
    return entries;
  }

  private async run(stream: HranaStream, request: StreamRequest): Promise<StreamResponse> {
    if (stream.state === "closed") {
      throw new HranaError("STREAM_CLOSED", "The stream was closed by an earlier request in this pipeline");
    }
    switch (request.type) {
      case "close":
        await this.streams.close(stream);
        return { type: "close" };
      case "execute": {
        const result = await stream.session.execute(this.statement(stream, request.stmt));
        return { type: "execute", result: encodeStmtResult(result, request.stmt.wantRows) };
      }
      case "batch": {
        const outcomes = await this.batch(stream, request.steps);
        const result: ProtoBatchResult = { step_results: [], step_errors: [] };
        for (const o of outcomes) {
          result.step_results.push(o.kind === "ok" ? encodeStmtResult(o.result, o.wantRows) : null);
          result.step_errors.push(o.kind === "error" ? o.error : null);
        }
        return { type: "batch", result };
      }
      case "sequence":
        await stream.session.executeScript(this.sqlText(stream, request.sql));
        return { type: "sequence" };
      case "describe": {
        const d = await stream.session.describe(this.sqlText(stream, request.sql));
        return {
          type: "describe",
          result: {
            params: d.params.map((p) => ({ name: p.name })),
            // DescribeCol.name is a string in the spec (not nullable, unlike Col.name).
            cols: encodeColumns(d.columns).map((c) => ({ name: c.name ?? "", decltype: c.decltype })),
            is_explain: d.isExplain,
            is_readonly: d.isReadonly,
          },
        };
      }
      case "store_sql":
        this.storeSql(stream, request.sqlId, request.sql);
        return { type: "store_sql" };
      case "close_sql": {
        // Closing an id that is not stored is not an error (spec).
        const sql = stream.sqls.get(request.sqlId);
        if (sql !== undefined) {
          stream.sqls.delete(request.sqlId);
          stream.sqlBytes -= Buffer.byteLength(sql);
        }
        return { type: "close_sql" };
      }
      case "get_autocommit":
        return { type: "get_autocommit", is_autocommit: stream.session.isAutocommit() };
      case "unknown":
        throw new HranaError("UNKNOWN_REQUEST", `Request type ${JSON.stringify(request.name)} is not supported by this server`);
    }
  }

  private batch(stream: HranaStream, steps: readonly BatchStep[]): Promise<StepOutcome[]> {
    return runBatch(stream.session, steps, async (stmt) => {
      try {
        const result = await stream.session.execute(this.statement(stream, stmt));
        return { kind: "ok", result, wantRows: stmt.wantRows };
      } catch (e) {
        return { kind: "error", error: this.protoError(e) };
      }
    });
  }

  private statement(stream: HranaStream, stmt: StmtRequest): SqlStatement {
    return { sql: this.sqlText(stream, stmt), args: stmt.args, namedArgs: stmt.namedArgs, wantRows: stmt.wantRows };
  }

  private sqlText(stream: HranaStream, ref: SqlRef): string {
    if (ref.sql !== undefined) return ref.sql;
    const sql = stream.sqls.get(ref.sqlId!);
    if (sql === undefined) throw new HranaError("SQL_NOT_FOUND", `SQL text ${ref.sqlId} is not stored on this stream`);
    return sql;
  }

  private storeSql(stream: HranaStream, sqlId: number, sql: string): void {
    const { maxStoredSql, maxStoredSqlBytes } = this.streams.options;
    if (stream.sqls.has(sqlId)) throw new HranaError("SQL_EXISTS", `SQL text ${sqlId} is already stored on this stream`);
    if (stream.sqls.size >= maxStoredSql) {
      throw new HranaError("SQL_STORE_TOO_MANY", `The stream already stores ${stream.sqls.size} SQL texts, its limit`);
    }
    const bytes = Buffer.byteLength(sql);
    if (stream.sqlBytes + bytes > maxStoredSqlBytes) {
      throw new HranaError(
        "SQL_STORE_TOO_LARGE",
        `Storing ${bytes} more bytes of SQL would exceed this stream's ${maxStoredSqlBytes} bytes`,
      );
    }
    stream.sqls.set(sqlId, sql);
    stream.sqlBytes += bytes;
  }

  private protoError(e: unknown): ProtoError {
    return toProtoError(e, (err) => this.log.error("engine-unexpected-error", { error: err }));
  }
}
