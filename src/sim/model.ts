/**
 * The simulator's oracle: every mini-transaction any simulated writer submitted, what became of it
 * (acknowledged, answered "outcome unknown", or never answered), every recovery the control plane
 * recorded, and from those a naive model of every page at every read point.
 *
 * The model is deliberately dumb (STYLE.md: test against a naive version). An MTR *survives* unless
 * a recovery of a later epoch recorded a VDL below its commit LSN (recovery annuls everything above
 * its VDL written under an older epoch, invariant 8). The page at read point P is then the image
 * written by the last surviving record of that page with LSN ≤ P — each record carries the full
 * page image the writer meant it to produce, so no redo is applied here and a bug in diff encoding,
 * materialization or annulment in the code under test cannot hide behind the same bug in the model.
 */
import { assert } from "../core/assert.js";
import type { Epoch, Lsn, PageNo, PgId } from "../core/types.js";

export interface ModelRecord {
  readonly pgId: PgId;
  readonly pageNo: PageNo;
  readonly lsn: Lsn;
  readonly epoch: Epoch;
  /** The page as this record leaves it. */
  readonly after: Uint8Array;
  /** The encoded payload the writer shipped (the final check compares stored records with it). */
  readonly payload: Uint8Array;
  readonly flags: number;
  readonly prevLsnInSegment: Lsn;
  readonly prevLsnInVolume: Lsn;
  readonly mtr: ModelMtr;
}

export type MtrStatus = "pending" | "acked" | "unknown";

export interface ModelMtr {
  /** The writer incarnation that submitted it ("w1#3"). */
  readonly writer: string;
  readonly epoch: Epoch;
  readonly firstLsn: Lsn;
  readonly commitLsn: Lsn;
  readonly records: ModelRecord[];
  status: MtrStatus;
  ackedAtMs?: number;
}

export interface ModelRecovery {
  readonly epoch: Epoch;
  readonly vdl: Lsn;
  readonly truncateThrough: Lsn;
}

export class History {
  readonly mtrs: ModelMtr[] = [];
  /** Records by LSN: an LSN names exactly one record, across all epochs (invariant 1). */
  readonly records = new Map<number, ModelRecord>();
  /** Per page, its records in LSN order. */
  private readonly byPage = new Map<number, ModelRecord[]>();
  /** Per PG, its records in LSN order. */
  private readonly byPg = new Map<number, ModelRecord[]>();
  /** Recoveries the control plane recorded, in the order it recorded them. */
  readonly recoveries: ModelRecovery[] = [];

  constructor(readonly pageSize: number, readonly pgPages: number, readonly pgCount: number) {}

  get pageCount(): number {
    return this.pgPages * this.pgCount;
  }

  addMtr(m: ModelMtr): void {
    for (const r of m.records) {
      assert(!this.records.has(r.lsn), 1, `LSN ${r.lsn} allocated twice (by ${this.records.get(r.lsn)?.mtr.writer} and ${m.writer})`);
      this.records.set(r.lsn, r);
      push(this.byPage, r.pageNo, r);
      push(this.byPg, r.pgId, r);
    }
    this.mtrs.push(m);
  }

  addRecovery(r: ModelRecovery): void {
    this.recoveries.push(r);
  }

  /** The recovery that annulled `m`, if any. */
  annulledBy(m: { readonly epoch: Epoch; readonly commitLsn: Lsn }): ModelRecovery | undefined {
    return this.recoveries.find((r) => r.epoch > m.epoch && m.commitLsn > r.vdl);
  }

  survives(m: ModelMtr): boolean {
    return this.annulledBy(m) === undefined;
  }

  /** The page at read point `p`: the last surviving record of the page at or below it, or zeros. */
  pageAt(pageNo: number, p: number): { lsn: number; bytes: Uint8Array } {
    const list = this.byPage.get(pageNo) ?? [];
    for (let i = upperBound(list, p) - 1; i >= 0; i--) {
      const r = list[i]!;
      if (this.survives(r.mtr)) return { lsn: r.lsn, bytes: r.after };
    }
    return { lsn: 0, bytes: new Uint8Array(this.pageSize) };
  }

  /** The PG's last surviving record at or below `p` (0 if none): what a segment complete at `p` holds. */
  lastOfPgAt(pgId: number, p: number): number {
    const list = this.byPg.get(pgId) ?? [];
    for (let i = upperBound(list, p) - 1; i >= 0; i--) {
      const r = list[i]!;
      if (this.survives(r.mtr)) return r.lsn;
    }
    return 0;
  }

  /** Surviving records of a PG with LSN ≤ p, in LSN order. */
  survivingOfPg(pgId: number, p: number): ModelRecord[] {
    const list = this.byPg.get(pgId) ?? [];
    return list.slice(0, upperBound(list, p)).filter((r) => this.survives(r.mtr));
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  let list = m.get(k);
  if (list === undefined) m.set(k, (list = []));
  // Records arrive in LSN order per writer, but a stale writer and its successor interleave: keep order.
  let i = list.length;
  while (i > 0 && (list[i - 1] as { lsn: number }).lsn > (v as { lsn: number }).lsn) i--;
  list.splice(i, 0, v);
}

/** Index of the first record with LSN > p. */
function upperBound(list: readonly ModelRecord[], p: number): number {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid]!.lsn <= p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
