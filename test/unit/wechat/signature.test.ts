import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import path from 'node:path';
import {
  isFreshTimestamp,
  verifyWeChatMsgSignature,
  verifyWeChatSignature,
  weChatSignature,
} from '../../../src/wechat/signature';

interface Vector {
  id: string;
  kind: string;
  input: Record<string, string>;
  expected: Record<string, unknown>;
}
const vectors = (
  JSON.parse(readFileSync(path.join(__dirname, '../../fixtures/crypto-vectors.json'), 'utf8')) as { vectors: Vector[] }
).vectors;
const plainVectors = vectors.filter((v) => v.kind === 'plain_signature');
const msgSignatureVectors = vectors.filter((v) => typeof v.input['msg_signature'] === 'string');

describe('weChatSignature', () => {
  test.each(plainVectors.map((v) => [v.id, v] as const))('plain signature vector %s', (_id, v) => {
    const { token, timestamp, nonce } = v.input as { token: string; timestamp: string; nonce: string };
    expect(weChatSignature([token, timestamp, nonce])).toBe(v.expected['signature']);
  });

  test('sorts before hashing, so argument order does not matter', () => {
    expect(weChatSignature(['b', 'a', 'c'])).toBe(weChatSignature(['c', 'b', 'a']));
    // sha1("15147114921714036504AAAAA") from the official worked example
    expect(weChatSignature(['AAAAA', '1714036504', '1514711492'])).toBe('f464b24fc39322e44b38aa78f5edd27bd1441696');
  });

  test('sorts by UTF-8 bytes, as the official samples do, also beside characters outside the BMP', () => {
    // U+FF5E sorts after U+1F600 in UTF-16 (0xFF5E > 0xD83D) but before it in UTF-8 bytes (EF… < F0…).
    const byBytes = (parts: string[]) =>
      createHash('sha1')
        .update(Buffer.concat(parts.map((part) => Buffer.from(part, 'utf8')).sort((a, b) => a.compare(b))))
        .digest('hex');
    expect(weChatSignature(['\u{1F600}', '\uFF5E'])).toBe(byBytes(['\uFF5E', '\u{1F600}']));
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme' }), { minLength: 1, maxLength: 4 }), (parts) => {
        expect(weChatSignature(parts)).toBe(byBytes(parts));
      }),
    );
  });
});

describe('verifyWeChatSignature', () => {
  const v = plainVectors[0]!;
  const good = {
    token: v.input['token']!,
    timestamp: v.input['timestamp']!,
    nonce: v.input['nonce']!,
    signature: v.expected['signature'] as string,
  };

  test.each(plainVectors.map((p) => [p.id, p] as const))('accepts vector %s', (_id, p) => {
    expect(
      verifyWeChatSignature({
        token: p.input['token']!,
        timestamp: p.input['timestamp'],
        nonce: p.input['nonce'],
        signature: p.expected['signature'] as string,
      }),
    ).toBe(true);
  });

  test('accepts upper-case hex', () => {
    expect(verifyWeChatSignature({ ...good, signature: good.signature.toUpperCase() })).toBe(true);
  });

  test('rejects a wrong token, timestamp, nonce or signature', () => {
    expect(verifyWeChatSignature({ ...good, token: 'AAAAB' })).toBe(false);
    expect(verifyWeChatSignature({ ...good, timestamp: '1714036505' })).toBe(false);
    expect(verifyWeChatSignature({ ...good, nonce: '1514711493' })).toBe(false);
    expect(verifyWeChatSignature({ ...good, signature: `${good.signature.slice(0, 39)}0` })).toBe(false);
  });

  test('returns false, never throws, on missing or malformed input', () => {
    const { signature: _s, ...noSignature } = good;
    const { timestamp: _t, ...noTimestamp } = good;
    const { nonce: _n, ...noNonce } = good;
    expect(verifyWeChatSignature(noSignature)).toBe(false);
    expect(verifyWeChatSignature(noTimestamp)).toBe(false);
    expect(verifyWeChatSignature(noNonce)).toBe(false);
    expect(verifyWeChatSignature({ ...good, token: '' })).toBe(false);
    expect(verifyWeChatSignature({ ...good, signature: '' })).toBe(false);
    expect(verifyWeChatSignature({ ...good, signature: 'zz'.repeat(20) })).toBe(false);
    expect(verifyWeChatSignature({ ...good, signature: `${good.signature}00` })).toBe(false);
    // What Express hands over for `?signature=a&signature=b` or `?signature[x]=1`
    const weird = { ...good, signature: [good.signature, good.signature] } as unknown as typeof good;
    expect(verifyWeChatSignature(weird)).toBe(false);
    expect(verifyWeChatSignature({ ...good, timestamp: { x: '1' } } as unknown as typeof good)).toBe(false);
    expect(verifyWeChatSignature(null as unknown as typeof good)).toBe(false);
  });
});

describe('verifyWeChatMsgSignature', () => {
  test.each(msgSignatureVectors.map((v) => [v.id, v] as const))('accepts vector %s', (_id, v) => {
    const input = {
      token: v.input['token']!,
      timestamp: v.input['timestamp'],
      nonce: v.input['nonce'],
      encrypt: v.input['encrypt'] ?? v.input['echostr']!,
      msgSignature: v.input['msg_signature'],
    };
    expect(verifyWeChatMsgSignature(input)).toBe(true);
    expect(verifyWeChatMsgSignature({ ...input, encrypt: `${input.encrypt.slice(0, -4)}AAA=` })).toBe(false);
    expect(verifyWeChatMsgSignature({ ...input, msgSignature: undefined })).toBe(false);
    expect(verifyWeChatMsgSignature({ ...input, encrypt: '' })).toBe(false);
  });

  test('is not the plain signature', () => {
    const v = msgSignatureVectors[0]!;
    const plain = weChatSignature([v.input['token']!, v.input['timestamp']!, v.input['nonce']!]);
    expect(
      verifyWeChatMsgSignature({
        token: v.input['token']!,
        timestamp: v.input['timestamp'],
        nonce: v.input['nonce'],
        encrypt: v.input['encrypt']!,
        msgSignature: plain,
      }),
    ).toBe(false);
  });
});

describe('isFreshTimestamp', () => {
  const now = 1_714_036_504_000;

  test('accepts timestamps within the window on either side', () => {
    expect(isFreshTimestamp('1714036504', now)).toBe(true);
    expect(isFreshTimestamp(String(1714036504 - 300), now)).toBe(true);
    expect(isFreshTimestamp(String(1714036504 + 300), now)).toBe(true);
    expect(isFreshTimestamp(String(1714036504 - 60), now, 60)).toBe(true);
  });

  test('rejects timestamps outside the window', () => {
    expect(isFreshTimestamp(String(1714036504 - 301), now)).toBe(false);
    expect(isFreshTimestamp(String(1714036504 + 301), now)).toBe(false);
    expect(isFreshTimestamp(String(1714036504 - 61), now, 60)).toBe(false);
    // milliseconds by mistake (node-webot did this) are far in the future
    expect(isFreshTimestamp(String(now), now)).toBe(false);
  });

  test('rejects anything that is not plain digits', () => {
    for (const bad of [undefined, '', ' 1714036504', '1714036504 ', '-1714036504', '1.7e9', '0x66', '1714036504.0', 'abc']) {
      expect(isFreshTimestamp(bad, now)).toBe(false);
    }
    expect(isFreshTimestamp(['1714036504'] as unknown as string, now)).toBe(false);
    expect(isFreshTimestamp('1714036504', Number.NaN)).toBe(false);
  });
});
