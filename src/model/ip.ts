/**
 * A literal IPv4 or IPv6 address (endpoint addresses must be one for STATIC resolution and for gRPC clients).
 * Pure on purpose: the model may not import node:net.
 */
export function isIp(s: string): boolean {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (v4) return v4.slice(1).every((octet) => Number(octet) <= 255);
  if (!s.includes(':') || !/^[0-9a-fA-F:.]+$/.test(s)) return false;
  return URL.canParse(`http://[${s}]/`); // the URL parser validates IPv6 literals exactly
}
