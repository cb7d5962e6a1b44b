/**
 * Hrana values ↔ engine values: exact 64-bit integers, the integral-float rule, base64 with and without
 * padding, infinite floats in JSON, and a property test that anything encoded decodes to itself.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { SqlValue } from "../../src/compute/sql-engine.js";
import { HranaError } from "../../src/endpoint/errors.js";
import { stringifyJson } from "../../src/endpoint/json.js";
import { decodeValue, encodeValue } from "../../src/endpoint/values.js";

const dec = (json: unknown, mode: "integer" | "float" = "integer") => decodeValue(json, "v", mode);

function protocolError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HranaError && e.code === "PROTOCOL_ERROR", String(e));
    return e.message;
  }
  assert.fail("expected a protocol error");
}

test("integers are exact over the whole 64-bit range and nothing beyond", () => {
  assert.deepEqual(dec({ type: "integer", value: "9223372036854775807" }), { type: "integer", value: 2n ** 63n - 1n });
  assert.deepEqual(dec({ type: "integer", value: "-9223372036854775808" }), { type: "integer", value: -(2n ** 63n) });
  assert.deepEqual(dec({ type: "integer", value: 12 }), { type: "integer", value: 12n }, "safe JSON numbers are accepted");
  assert.match(protocolError(() => dec({ type: "integer", value: "9223372036854775808" })), /64 bits/);
  assert.match(protocolError(() => dec({ type: "integer", value: "1e3" })), /decimal string/);
  assert.match(protocolError(() => dec({ type: "integer", value: 2 ** 60 })), /decimal string/);
  assert.equal(JSON.stringify(encodeValue({ type: "integer", value: -(2n ** 63n) })), '{"type":"integer","value":"-9223372036854775808"}');
});

test("integral floats bind as integers by default, as floats on request", () => {
  assert.deepEqual(dec({ type: "float", value: 5 }), { type: "integer", value: 5n });
  assert.deepEqual(dec({ type: "float", value: -(2 ** 53) + 1 }), { type: "integer", value: -(2n ** 53n) + 1n });
  assert.deepEqual(dec({ type: "float", value: 2 ** 53 }), { type: "float", value: 2 ** 53 }, "beyond the safe range stays a float");
  assert.deepEqual(dec({ type: "float", value: 5.5 }), { type: "float", value: 5.5 });
  const negZero = dec({ type: "float", value: -0 });
  assert.ok(negZero.type === "float" && Object.is(negZero.value, -0), "-0 stays a float");
  assert.deepEqual(dec({ type: "float", value: 5 }, "float"), { type: "float", value: 5 });
});

test("blobs accept base64 with or without padding and are emitted without", () => {
  const bytes = new Uint8Array([1, 2, 3, 4]);
  for (const b64 of ["AQIDBA==", "AQIDBA"]) {
    const v = dec({ type: "blob", base64: b64 });
    assert.ok(v.type === "blob");
    assert.deepEqual([...v.value], [...bytes]);
  }
  assert.deepEqual(encodeValue({ type: "blob", value: bytes }), { type: "blob", base64: "AQIDBA" });
  assert.match(protocolError(() => dec({ type: "blob", base64: "AQ*DBA" })), /base64/);
  assert.match(protocolError(() => dec({ type: "blob", base64: "A" })), /base64/);
  assert.match(protocolError(() => dec({ type: "blob", base64: "AQ===" })), /base64/);
});

test("infinite floats are written as ±1e999, which parse back as ±Infinity", () => {
  const body = { rows: [[encodeValue({ type: "float", value: Infinity }), encodeValue({ type: "float", value: -Infinity }), encodeValue({ type: "text", value: "1e999" })]] };
  const text = stringifyJson(body);
  assert.equal(text, '{"rows":[[{"type":"float","value":1e999},{"type":"float","value":-1e999},{"type":"text","value":"1e999"}]]}');
  const back = JSON.parse(text);
  assert.equal(back.rows[0][0].value, Infinity);
  assert.equal(back.rows[0][1].value, -Infinity);
  assert.deepEqual(encodeValue({ type: "float", value: NaN }), { type: "null" });
});

test("malformed values are protocol errors", () => {
  protocolError(() => dec(null));
  protocolError(() => dec([]));
  protocolError(() => dec({ type: "decimal", value: "1" }));
  protocolError(() => dec({ type: "text", value: 5 }));
  protocolError(() => dec({ type: "float", value: "5" }));
});

const sqlValue: fc.Arbitrary<SqlValue> = fc.oneof(
  fc.constant<SqlValue>({ type: "null" }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value): SqlValue => ({ type: "integer", value })),
  fc.double({ noNaN: true }).map((value): SqlValue => ({ type: "float", value })),
  fc.string({ unit: "grapheme" }).map((value): SqlValue => ({ type: "text", value })),
  fc.uint8Array({ maxLength: 64 }).map((value): SqlValue => ({ type: "blob", value })),
);

test("property: encode → JSON text → decode is the identity (floats in 'float' mode)", () => {
  fc.assert(
    fc.property(sqlValue, (v) => {
      const back = decodeValue(JSON.parse(stringifyJson(encodeValue(v))), "v", "float");
      if (v.type === "float" && Object.is(v.value, -0)) {
        // JSON has no -0 on the way out of JSON.stringify: it reads back as 0.
        assert.deepEqual(back, { type: "float", value: 0 });
        return;
      }
      assert.deepEqual(back.type === "blob" ? { type: "blob", value: [...back.value] } : back, v.type === "blob" ? { type: "blob", value: [...v.value] } : v);
    }),
    { numRuns: 2000 },
  );
});
