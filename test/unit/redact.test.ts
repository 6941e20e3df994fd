import { describe, expect, it } from 'vitest';
import { redactPrivateKeys } from '../../src/proto/redact.ts';

describe('private keys in debug output', () => {
  it('are replaced wherever they appear; certificates stay', () => {
    const secret = { name: 'kubernetes://tls', tls_certificate: { certificate_chain: { inline_bytes: 'Q0VSVA==' }, private_key: { inline_bytes: 'S0VZ' } } };
    const out = redactPrivateKeys({ sds: [secret], nested: [{ generic_secret: { secret: { inline_string: 'x' } } }] });
    expect(out.sds[0]!.tls_certificate).toEqual({ certificate_chain: { inline_bytes: 'Q0VSVA==' }, private_key: { inline_string: '[redacted]' } });
    expect(JSON.stringify(out)).not.toContain('S0VZ');
    expect(out.nested[0]!.generic_secret).toEqual({ inline_string: '[redacted]' });
    expect(secret.tls_certificate.private_key.inline_bytes).toBe('S0VZ'); // the input is not modified
  });
});
