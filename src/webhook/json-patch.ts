/**
 * The injection webhook's JSON patch: exactly what rfc6902's `createPatch(input, output, boundedDiff)` returns (same
 * operations, same order, same array edit script and tie-breaks, same paths), computed without its cost.
 *
 * rfc6902 decides whether two array elements are equal by computing their whole diff (with JSON pointers built and
 * escaped for every node) and checking it is empty, once per cell of the Levenshtein table, and copies the operation
 * list of every cell: for a pod of a few containers with ~20 env vars each, that was several ms per review, ~80% of the
 * webhook's CPU. Here equality is a plain deep comparison with the same notion of "equal" (an empty diff), the table
 * keeps costs and choices only, and pointers are strings built once per emitted operation.
 *
 * Arrays with more than MAX_ARRAY_DIFF_CELLS cells in their table are replaced whole (the table is quadratic), even
 * when equal: that is what the webhook's `boundedDiff` hook did, and keeping it keeps the patches identical.
 */
import type { Operation } from 'rfc6902';

/** Arrays this large are replaced whole instead of diffed element by element (the array diff is quadratic). */
export const MAX_ARRAY_DIFF_CELLS = 10_000;

const hasOwn = Object.prototype.hasOwnProperty;
type Obj = Record<string, unknown>;

const escapeToken = (token: string) => (token.includes('~') || token.includes('/') ? token.replace(/~/g, '~0').replace(/\//g, '~1') : token);
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const present = (o: Obj, key: string) => hasOwn.call(o, key) && o[key] !== undefined;
const bounded = (a: unknown, b: unknown) => Array.isArray(a) && Array.isArray(b) && a.length * b.length > MAX_ARRAY_DIFF_CELLS;

/** True when the diff of `a` and `b` is empty (rfc6902's notion of equal, with the bounded-array rule). */
function same(a: unknown, b: unknown): boolean {
  if (bounded(a, b)) return false;
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (!isObject(a) || !isObject(b)) return false;
  // Keys holding undefined do not count (they would not be serialized): a's keys are all b's and as many as b's.
  let count = 0;
  for (const key in a) {
    if (!present(a, key)) continue;
    if (!present(b, key) || !same(a[key], b[key])) return false;
    count++;
  }
  for (const key in b) if (present(b, key)) count--;
  return count === 0;
}

function diffAny(input: unknown, output: unknown, path: string, ops: Operation[]): void {
  if (bounded(input, output)) {
    ops.push({ op: 'replace', path, value: output });
    return;
  }
  if (input === output) return;
  if (Array.isArray(input) && Array.isArray(output)) return diffArrays(input, output, path, ops);
  if (isObject(input) && isObject(output)) return diffObjects(input, output, path, ops);
  ops.push({ op: 'replace', path, value: output });
}

function diffObjects(input: Obj, output: Obj, path: string, ops: Operation[]): void {
  for (const key in input) if (present(input, key) && !present(output, key)) ops.push({ op: 'remove', path: `${path}/${escapeToken(key)}` });
  for (const key in output) if (present(output, key) && !present(input, key)) ops.push({ op: 'add', path: `${path}/${escapeToken(key)}`, value: output[key] });
  for (const key in input) if (present(input, key) && present(output, key)) diffAny(input[key], output[key], `${path}/${escapeToken(key)}`, ops);
}

const KEEP = 0;
const REMOVE = 1;
const ADD = 2;
const REPLACE = 3;

/**
 * rfc6902's diffArrays: the Levenshtein table from input.slice(0, i) to output.slice(0, j), where equal elements are
 * kept at no cost and otherwise the cheapest of remove, add, replace wins (ties in that order), then the edit script
 * read back from the last cell, with indices shifted by the elements added and removed before them.
 */
function diffArrays(input: unknown[], output: unknown[], path: string, ops: Operation[]): void {
  const length = input.length;
  let n = length;
  let m = output.length;
  // From the last cell back, equal elements are kept before anything else is considered: a common tail needs no table.
  while (n > 0 && m > 0 && same(input[n - 1], output[m - 1])) {
    n--;
    m--;
  }
  if (n === 0 && m === 0) return;
  const w = m + 1;
  const cost = new Uint32Array((n + 1) * w);
  const choice = new Uint8Array((n + 1) * w);
  for (let j = 1; j <= m; j++) {
    cost[j] = j;
    choice[j] = ADD;
  }
  for (let i = 1; i <= n; i++) {
    const row = i * w;
    cost[row] = i;
    choice[row] = REMOVE;
    for (let j = 1; j <= m; j++) {
      const at = row + j;
      if (same(input[i - 1], output[j - 1])) {
        cost[at] = cost[at - w - 1]!;
        choice[at] = KEEP;
        continue;
      }
      const remove = cost[at - w]! + 1;
      const add = cost[at - 1]! + 1;
      const replace = cost[at - w - 1]! + 1;
      const c = remove <= add && remove <= replace ? REMOVE : add <= replace ? ADD : REPLACE;
      cost[at] = c === REMOVE ? remove : c === ADD ? add : replace;
      choice[at] = c;
    }
  }
  // Walk back from (n, m); the edit script is in reverse.
  const script: Array<{ kind: number; i: number; j: number }> = [];
  for (let i = n, j = m; i > 0 || j > 0; ) {
    const c = choice[i * w + j]!;
    if (c !== KEEP) script.push({ kind: c, i, j });
    if (c !== ADD) i--;
    if (c !== REMOVE) j--;
  }
  let padding = 0;
  for (let k = script.length - 1; k >= 0; k--) {
    const { kind, i, j } = script[k]!;
    // The operation's index is i - 1 (for an add, the element it goes after).
    if (kind === ADD) {
      const padded = i + padding;
      ops.push({ op: 'add', path: `${path}/${padded < length + padding ? String(padded) : '-'}`, value: output[j - 1] });
      padding++;
    } else if (kind === REMOVE) {
      ops.push({ op: 'remove', path: `${path}/${i - 1 + padding}` });
      padding--;
    } else diffAny(input[i - 1], output[j - 1], `${path}/${i - 1 + padding}`, ops);
  }
}

/** The JSON patch (RFC 6902) from `input` to `output`. */
export function createPodPatch(input: unknown, output: unknown): Operation[] {
  const ops: Operation[] = [];
  diffAny(input, output, '', ops);
  return ops;
}
