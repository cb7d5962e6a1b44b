/**
 * Where SQL statements end, without parsing SQL: the `borealis sql` shell uses it to know when a
 * multi-line statement is complete and to split scripts into statements.
 *
 * This is SQLite's own `sqlite3_complete()` (src/complete.c), re-expressed: a tokenizer that knows
 * strings ('…', "…", `…`, […]), comments (-- and /* *\/) and words, driving an 8-state machine so
 * that the semicolons inside `CREATE TRIGGER … BEGIN …; …; END;` do not end the statement. A
 * statement is complete when the machine is back in its START state after a semicolon. Using the
 * same rule as the sqlite3 shell means users get the behaviour they already know.
 */

const enum Tok { Semi, Ws, Other, Explain, Create, Temp, Trigger, End }

const enum State { Invalid, Start, Normal, Explain, Create, Trigger, Semi, End }

// trans[state][token], from complete.c.
const TRANS: readonly (readonly State[])[] = [
  /* Invalid */ [State.Start, State.Invalid, State.Normal, State.Explain, State.Create, State.Normal, State.Normal, State.Normal],
  /* Start   */ [State.Start, State.Start, State.Normal, State.Explain, State.Create, State.Normal, State.Normal, State.Normal],
  /* Normal  */ [State.Start, State.Normal, State.Normal, State.Normal, State.Normal, State.Normal, State.Normal, State.Normal],
  /* Explain */ [State.Start, State.Explain, State.Explain, State.Normal, State.Create, State.Normal, State.Normal, State.Normal],
  /* Create  */ [State.Start, State.Create, State.Normal, State.Normal, State.Normal, State.Create, State.Trigger, State.Normal],
  /* Trigger */ [State.Semi, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger],
  /* Semi    */ [State.Semi, State.Semi, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.End],
  /* End     */ [State.Start, State.End, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger, State.Trigger],
];

interface Token {
  readonly tok: Tok;
  /** Offset just past the token. */
  readonly end: number;
}

function isIdChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24 || c >= 0x80;
}

function keyword(word: string): Tok {
  switch (word.toLowerCase()) {
    case "create": return Tok.Create;
    case "trigger": return Tok.Trigger;
    case "temp":
    case "temporary": return Tok.Temp;
    case "end": return Tok.End;
    case "explain": return Tok.Explain;
    default: return Tok.Other;
  }
}

/**
 * Tokens of `sql` from `from`. Yields `undefined` and stops when a string, quoted name or block
 * comment is unterminated (the text cannot be complete). A `--` comment running to the end of the
 * text is whitespace, as in complete.c.
 */
function* tokens(sql: string, from = 0): Generator<Token | undefined> {
  let i = from;
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    let tok: Tok;
    let end = i + 1;
    if (c === 0x3b /* ; */) {
      tok = Tok.Semi;
    } else if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0c) {
      tok = Tok.Ws;
    } else if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a /* * */) {
      const close = sql.indexOf("*/", i + 2);
      if (close < 0) { yield undefined; return; }
      tok = Tok.Ws;
      end = close + 2;
    } else if (c === 0x2d /* - */ && sql.charCodeAt(i + 1) === 0x2d) {
      const nl = sql.indexOf("\n", i + 2);
      tok = Tok.Ws;
      end = nl < 0 ? n : nl + 1;
    } else if (c === 0x5b /* [ */) {
      const close = sql.indexOf("]", i + 1);
      if (close < 0) { yield undefined; return; }
      tok = Tok.Other;
      end = close + 1;
    } else if (c === 0x27 || c === 0x22 || c === 0x60 /* ' " ` */) {
      // A doubled quote ('it''s') closes and reopens: two tokens, same outcome.
      const close = sql.indexOf(sql[i]!, i + 1);
      if (close < 0) { yield undefined; return; }
      tok = Tok.Other;
      end = close + 1;
    } else if (isIdChar(c)) {
      while (end < n && isIdChar(sql.charCodeAt(end))) end++;
      tok = keyword(sql.slice(i, end));
    } else {
      tok = Tok.Other;
    }
    yield { tok, end };
    i = end;
  }
}

/** `sqlite3_complete()`: true when `sql` ends with a complete statement (and is not only blanks). */
export function isComplete(sql: string): boolean {
  let state = State.Invalid;
  for (const t of tokens(sql)) {
    if (t === undefined) return false;
    state = TRANS[state]![t.tok]!;
  }
  return state === State.Start;
}

export interface SplitResult {
  /** Complete statements, each with its terminating semicolon, blank ones (";", comments) dropped. */
  readonly statements: string[];
  /** What follows the last complete statement, trimmed; "" when nothing but blanks. */
  readonly rest: string;
  /** True when `rest` holds something other than whitespace and comments. */
  readonly restHasContent: boolean;
}

/** Splits a script into its complete statements and an incomplete remainder. */
export function splitStatements(sql: string): SplitResult {
  const statements: string[] = [];
  let state = State.Invalid;
  let start = 0;
  let content = false; // the current statement has a token other than blanks and semicolons
  for (const t of tokens(sql)) {
    if (t === undefined) {
      // Unterminated string or comment: everything from `start` is the (incomplete) rest.
      return { statements, rest: sql.slice(start).trim(), restHasContent: true };
    }
    const next: State = TRANS[state]![t.tok]!;
    if (t.tok !== Tok.Ws && t.tok !== Tok.Semi) content = true;
    if (t.tok === Tok.Semi && next === State.Start) {
      if (content) statements.push(sql.slice(start, t.end).trim());
      start = t.end;
      content = false;
    }
    state = next;
  }
  return { statements, rest: sql.slice(start).trim(), restHasContent: content };
}

/** The first `count` words of a statement, upper-cased, skipping blanks and comments. */
export function leadingWords(sql: string, count: number): string[] {
  const words: string[] = [];
  let from = 0;
  for (const t of tokens(sql)) {
    if (t === undefined || words.length >= count) break;
    if (t.tok !== Tok.Ws && t.tok !== Tok.Semi) {
      const text = sql.slice(from, t.end);
      if (!/^[A-Za-z_]/.test(text)) break;
      words.push(text.toUpperCase());
    }
    from = t.end;
  }
  return words;
}
