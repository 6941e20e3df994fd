/**
 * CIDR parsing and formatting as Go's net/netip does it, since istio-iptables writes `prefix.String()` into the rules:
 * the address is kept as given (not masked: `10.96.0.2/24` stays so) and IPv6 is printed in RFC 5952 form (lower
 * case, the first longest run of two or more zero groups compressed, `::ffff:1.2.3.4` for IPv4-mapped addresses).
 * Pure, no dependencies.
 */
export interface Prefix {
  family: 4 | 6;
  /** The canonical text, e.g. `10.0.0.0/8`, `2001:db8::/32`. */
  text: string;
  bits: number;
  /** netip Addr.IsLoopback: 127.0.0.0/8 or ::1. */
  loopback: boolean;
}

function parseIPv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    // netip refuses leading zeros (they are octal to some parsers).
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    out.push(Number(p));
  }
  return out;
}

/** 16 bytes, or undefined. Zones (`%eth0`) are refused: a prefix cannot carry one. */
function parseIPv6(s: string): number[] | undefined {
  if (s.includes('%')) return undefined;
  let tail: number[] = [];
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    tail = v4;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const rest = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array<number>(missing).fill(0), ...rest];
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function formatIPv6(b: number[]): string {
  const isMapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (isMapped) return `::ffff:${b.slice(12).join('.')}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** `addr/bits` → Prefix, or undefined when it is not one (a bare address is not a prefix, as in netip). */
export function parsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = s.slice(0, slash);
  const bitsText = s.slice(slash + 1);
  if (!/^(0|[1-9]\d{0,2})$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  const v4 = parseIPv4(addr);
  if (v4) {
    if (bits > 32) return undefined;
    return { family: 4, text: `${v4.join('.')}/${bits}`, bits, loopback: v4[0] === 127 };
  }
  const v6 = parseIPv6(addr);
  if (!v6 || bits > 128) return undefined;
  const loopback = v6.slice(0, 15).every((x) => x === 0) && v6[15] === 1;
  return { family: 6, text: `${formatIPv6(v6)}/${bits}`, bits, loopback };
}
