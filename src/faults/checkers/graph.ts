/**
 * A small directed graph with typed edges, for the transaction checkers: Tarjan's strongly connected
 * components (iterative, so a long chain of transactions cannot overflow the stack) and breadth-first
 * path search restricted to edge types. Nodes are integers (transaction ids); each edge carries a bit
 * mask of the dependency kinds that connect its two ends.
 */

export const WW = 1;
export const WR = 2;
export const RW = 4;
export const PROCESS = 8;
export const REALTIME = 16;
export const DEPENDENCY = WW | WR | RW;
export const ALL_EDGES = DEPENDENCY | PROCESS | REALTIME;

export function edgeNames(mask: number): string[] {
  const out: string[] = [];
  if (mask & WW) out.push("ww");
  if (mask & WR) out.push("wr");
  if (mask & RW) out.push("rw");
  if (mask & PROCESS) out.push("process");
  if (mask & REALTIME) out.push("realtime");
  return out;
}

export class Graph {
  readonly out = new Map<number, Map<number, number>>();

  addNode(n: number): void {
    if (!this.out.has(n)) this.out.set(n, new Map());
  }

  addEdge(from: number, to: number, kind: number): void {
    if (from === to) return;
    this.addNode(from);
    this.addNode(to);
    const m = this.out.get(from)!;
    m.set(to, (m.get(to) ?? 0) | kind);
  }

  edge(from: number, to: number): number {
    return this.out.get(from)?.get(to) ?? 0;
  }

  get nodes(): number[] {
    return [...this.out.keys()];
  }

  /**
   * Strongly connected components with more than one node, using only edges whose mask intersects
   * `allowed`, among `within` (all nodes by default). Iterative Tarjan.
   */
  sccs(allowed: number, within?: ReadonlySet<number>): number[][] {
    const index = new Map<number, number>();
    const low = new Map<number, number>();
    const onStack = new Set<number>();
    const stack: number[] = [];
    const result: number[][] = [];
    let next = 0;
    const nodes = within === undefined ? this.nodes : [...within];
    const succ = (n: number): number[] => {
      const out: number[] = [];
      for (const [to, mask] of this.out.get(n) ?? []) {
        if ((mask & allowed) !== 0 && (within === undefined || within.has(to))) out.push(to);
      }
      return out;
    };
    for (const root of nodes) {
      if (index.has(root)) continue;
      const work: { node: number; succ: number[]; i: number }[] = [];
      const enter = (n: number): void => {
        index.set(n, next);
        low.set(n, next);
        next++;
        stack.push(n);
        onStack.add(n);
        work.push({ node: n, succ: succ(n), i: 0 });
      };
      enter(root);
      while (work.length > 0) {
        const frame = work[work.length - 1]!;
        if (frame.i < frame.succ.length) {
          const to = frame.succ[frame.i++]!;
          if (!index.has(to)) enter(to);
          else if (onStack.has(to)) low.set(frame.node, Math.min(low.get(frame.node)!, index.get(to)!));
          continue;
        }
        work.pop();
        if (work.length > 0) {
          const parent = work[work.length - 1]!.node;
          low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
        }
        if (low.get(frame.node) === index.get(frame.node)) {
          const comp: number[] = [];
          let n: number;
          do {
            n = stack.pop()!;
            onStack.delete(n);
            comp.push(n);
          } while (n !== frame.node);
          if (comp.length > 1) result.push(comp);
        }
      }
    }
    return result;
  }

  /**
   * A shortest path from `from` to `to` (both included) using only edges in `allowed`, inside
   * `within`; undefined if there is none. `from === to` asks for a cycle through `from`.
   */
  path(from: number, to: number, allowed: number, within: ReadonlySet<number>): number[] | undefined {
    const prev = new Map<number, number>();
    const queue: number[] = [from];
    let head = 0;
    while (head < queue.length) {
      const n = queue[head++]!;
      for (const [next, mask] of this.out.get(n) ?? []) {
        if ((mask & allowed) === 0 || !within.has(next)) continue;
        if (next === to) {
          const path = [to, n];
          let p = n;
          while (p !== from) {
            p = prev.get(p)!;
            path.push(p);
          }
          return path.reverse();
        }
        if (next === from || prev.has(next)) continue;
        prev.set(next, n);
        queue.push(next);
      }
    }
    return undefined;
  }
}
