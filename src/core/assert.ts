/**
 * Assertions for programmer errors, always on (TigerBeetle's rule): a broken invariant means the code
 * is wrong, and the only safe reaction is to stop before it writes or acknowledges anything else.
 * Operating errors (a peer is down, a request is malformed) are never asserted; they are
 * `BorealisError`s with a code from `errors.ts`.
 *
 * When an assertion guards one of DESIGN.md's numbered invariants, pass its number so the message
 * names it: `assert(lsn > last, 1, "LSNs strictly increase")` → "invariant 1 violated: …".
 */

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message: string): asserts condition;
export function assert(condition: unknown, invariant: number, message: string): asserts condition;
export function assert(condition: unknown, a: string | number, b?: string): asserts condition {
  if (condition) return;
  const text = typeof a === "number" ? `invariant ${a} violated: ${b}` : a;
  throw new AssertionError(text);
}

export function unreachable(value: never, what = "value"): never {
  throw new AssertionError(`unreachable: unexpected ${what} ${JSON.stringify(value)}`);
}

/** A non-negative integer that a JavaScript number holds exactly (LSNs, page numbers, epochs, sizes). */
export function isSafeUint(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}
