/**
 * The webhook's own JSON patch (src/webhook/json-patch.ts) must give exactly what rfc6902's createPatch gives with the
 * webhook's old bounded-array hook: same operations, same order, same paths. Checked on random JSON pairs (including
 * mutations of one value, so that arrays share elements and the edit script matters) and on a real injection.
 */
import fc from 'fast-check';
import { applyPatch, createPatch, type Operation } from 'rfc6902';
import { describe, expect, it } from 'vitest';
import { createPodPatch, MAX_ARRAY_DIFF_CELLS } from '../../src/webhook/json-patch.ts';

const boundedDiff = (input: unknown, output: unknown, ptr: { toString(): string }): Operation[] | void => {
  if (Array.isArray(input) && Array.isArray(output) && input.length * output.length > MAX_ARRAY_DIFF_CELLS) return [{ op: 'replace', path: ptr.toString(), value: output }];
};

const key = fc.constantFrom('a', 'b', 'env', 'name', 'a/b', 'x~y', '', '0');
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, fc.constantFrom(null, true, false, 0, 1, 'v', 'w'), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 6 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})).value;

/** A value and a mutation of it: elements inserted, removed, replaced and reordered at any depth. */
interface Rng { int(lo: number, hi: number): number; bool(): boolean }
function rng(seed: number): Rng {
  let t = seed >>> 0;
  const next = () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let x = Math.imul(t ^ (t >>> 15), 1 | t);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), bool: () => next() < 0.5 };
}

function mutate(v: unknown, r: Rng): unknown {
  if (Array.isArray(v)) {
    const out = v.map((e) => (r.int(0, 3) === 0 ? mutate(e, r) : e));
    if (out.length && r.bool()) out.splice(r.int(0, out.length - 1), 1);
    if (r.bool()) out.splice(r.int(0, out.length), 0, r.bool() ? 'new' : { name: 'new' });
    return out;
  }
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, e] of Object.entries(v)) if (r.int(0, 5) !== 0) out[k] = r.int(0, 2) === 0 ? mutate(e, r) : e;
    if (r.bool()) out[`k${r.int(0, 3)}`] = 1;
    return out;
  }
  return r.bool() ? v : 'changed';
}

describe('createPodPatch', () => {
  it('equals rfc6902 createPatch with the bounded-array hook on random pairs', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        expect(createPodPatch(a, b)).toEqual(createPatch(a, b, boundedDiff));
      }),
      { numRuns: 2000 },
    );
  });

  it('equals rfc6902 on a value and its mutation, and the patch turns one into the other', () => {
    fc.assert(
      fc.property(json, fc.integer(), (a, seed) => {
        const b = mutate(a, rng(seed));
        const ops = createPodPatch(a, b);
        expect(ops).toEqual(createPatch(a, b, boundedDiff));
        const target = structuredClone({ root: a }).root;
        const wrapped = { v: target };
        const results = applyPatch(wrapped, ops.map((op) => ({ ...op, path: `/v${op.path}` })) as Operation[]);
        expect(results.every((x) => x === null)).toBe(true);
        expect(wrapped.v).toEqual(b);
      }),
      { numRuns: 1000 },
    );
  });

  it('replaces arrays over the cell bound whole, even when they are equal', () => {
    const big = Array.from({ length: 101 }, (_, i) => i);
    expect(createPodPatch({ a: big }, { a: [...big] })).toEqual([{ op: 'replace', path: '/a', value: big }]);
    expect(createPodPatch({ a: big }, { a: [...big] })).toEqual(createPatch({ a: big }, { a: [...big] }, boundedDiff));
  });
});
