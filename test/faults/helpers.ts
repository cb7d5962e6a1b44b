/**
 * Hand-made histories for the checker tests: `invoke` / `complete` build any interleaving; `txn`,
 * `op` are the sequential shorthand (invoke immediately followed by its completion).
 */
import type { Op, OpType, Process } from "../../src/faults/history.js";
import type { MicroOp } from "../../src/faults/checkers/list-append.js";

export class HandHistory {
  readonly ops: Op[] = [];

  invoke(process: Process, f: string, value: unknown): Op {
    return this.push(process, "invoke", f, value);
  }

  complete(invoked: Op, type: Exclude<OpType, "invoke">, value: unknown = invoked.value): Op {
    return this.push(invoked.process, type, invoked.f, value);
  }

  /** A list-append transaction: the invocation carries null reads; the completion the given values. */
  txn(process: number, mops: readonly MicroOp[], type: Exclude<OpType, "invoke"> = "ok"): Op {
    const inv = this.invoke(process, "txn", invokeValue(mops));
    return this.complete(inv, type, type === "ok" ? mops : inv.value);
  }

  op(process: number, f: string, invokeVal: unknown, type: Exclude<OpType, "invoke">, completeVal: unknown = invokeVal): Op {
    const inv = this.invoke(process, f, invokeVal);
    return this.complete(inv, type, completeVal);
  }

  private push(process: Process, type: OpType, f: string, value: unknown): Op {
    const op: Op = { index: this.ops.length, time: this.ops.length * 1000, process, type, f, value };
    this.ops.push(op);
    return op;
  }
}

export function invokeValue(mops: readonly MicroOp[]): MicroOp[] {
  return mops.map((m) => (m[0] === "r" ? ["r", m[1], null] as const : m));
}
