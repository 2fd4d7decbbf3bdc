/**
 * Fuzzing the WeChat request signatures: the verifiers never throw whatever arrives (Express may hand
 * over arrays, objects, undefined), accept exactly the right signature, and refuse any one-character
 * change to the signature or to what it signs.
 */
import fc from 'fast-check';
import { isFreshTimestamp, verifyWeChatMsgSignature, verifyWeChatSignature, weChatSignature } from '../../src/wechat/signature';
import { anyText, RUNS } from './support';

/** What a query value can be at run time: a string, several, a nested object, nothing. */
const queryValue = fc.oneof(
  { weight: 4, arbitrary: anyText(50) },
  { weight: 1, arbitrary: fc.anything() },
  { weight: 1, arbitrary: fc.array(fc.string(), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(undefined, null, '', '0'.repeat(40), 'F'.repeat(40)) },
);

/** Non-empty parts (an empty one never verifies), from every corner of Unicode. */
const part = anyText(40).filter((s) => s !== '');
const token = fc.oneof(fc.stringMatching(/^[A-Za-z0-9]{3,32}$/), part);
const timestamp = fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }).map(String), part);
const nonce = fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }).map(String), part);
const encrypt = fc.oneof(fc.base64String({ minLength: 4, maxLength: 200 }).filter((s) => s !== ''), part);

const HEX = '0123456789abcdef';

/** The signature with one hex digit replaced by a different one. */
const changedSignature = (signature: string) =>
  fc.tuple(fc.nat({ max: 39 }), fc.integer({ min: 1, max: 15 })).map(([index, shift]) => {
    const digit = HEX[(HEX.indexOf(signature[index]!) + shift) % 16]!;
    return signature.slice(0, index) + digit + signature.slice(index + 1);
  });

/**
 * `text` with the character (code point) at some index replaced by a different one. Signatures are
 * over UTF-8, where a lone surrogate and U+FFFD are the same bytes (a query string never carries a
 * lone surrogate: percent-decoding gives U+FFFD), so a change must change the bytes.
 */
const changedText = (text: string) => {
  const chars = [...text];
  return fc
    .tuple(fc.nat({ max: chars.length - 1 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }))
    .map(([index, char]) => [...chars.slice(0, index), char, ...chars.slice(index + 1)].join(''))
    .filter((changed) => !Buffer.from(changed, 'utf8').equals(Buffer.from(text, 'utf8')));
};

describe('verifyWeChatSignature / verifyWeChatMsgSignature', () => {
  it('never throw and answer a boolean, whatever the inputs are', () => {
    fc.assert(
      fc.property(queryValue, queryValue, queryValue, queryValue, queryValue, (t, ts, n, sig, enc) => {
        const plain = verifyWeChatSignature({ token: t, timestamp: ts, nonce: n, signature: sig } as never);
        const safe = verifyWeChatMsgSignature({ token: t, timestamp: ts, nonce: n, encrypt: enc, msgSignature: sig } as never);
        expect(typeof plain).toBe('boolean');
        expect(typeof safe).toBe('boolean');
      }),
      { numRuns: RUNS.cheap },
    );
    for (const input of [null, undefined, 42, 'x', [], {}]) {
      expect(verifyWeChatSignature(input as never)).toBe(false);
      expect(verifyWeChatMsgSignature(input as never)).toBe(false);
    }
  });

  it('accept the correct signature, in either case of hex', () => {
    fc.assert(
      fc.property(token, timestamp, nonce, encrypt, (t, ts, n, enc) => {
        const signature = weChatSignature([t, ts, n]);
        const msgSignature = weChatSignature([t, ts, n, enc]);
        expect(verifyWeChatSignature({ token: t, timestamp: ts, nonce: n, signature })).toBe(true);
        expect(verifyWeChatSignature({ token: t, timestamp: ts, nonce: n, signature: signature.toUpperCase() })).toBe(true);
        expect(verifyWeChatMsgSignature({ token: t, timestamp: ts, nonce: n, encrypt: enc, msgSignature })).toBe(true);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('refuse any one-digit change of the signature', () => {
    const signed = fc.tuple(token, timestamp, nonce).chain(([t, ts, n]) => {
      const signature = weChatSignature([t, ts, n]);
      return fc.tuple(fc.constant([t, ts, n] as const), changedSignature(signature));
    });
    fc.assert(
      fc.property(signed, ([[t, ts, n], signature]) => {
        expect(signature).not.toBe(weChatSignature([t, ts, n]));
        expect(verifyWeChatSignature({ token: t, timestamp: ts, nonce: n, signature })).toBe(false);
        expect(verifyWeChatMsgSignature({ token: t, timestamp: ts, nonce: n, encrypt: 'e', msgSignature: signature })).toBe(false);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('refuse a one-character change of the token, timestamp, nonce or Encrypt', () => {
    const change = fc.tuple(token, timestamp, nonce, encrypt, fc.nat({ max: 3 })).chain(([t, ts, n, enc, which]) => {
      const original = [t, ts, n, enc] as const;
      return changedText(original[which]!).map((changed) => {
        const parts: string[] = [...original];
        parts[which] = changed;
        return { original, parts, which };
      });
    });
    fc.assert(
      fc.property(change, ({ original, parts, which }) => {
        const [t, ts, n, enc] = original;
        const [t2, ts2, n2, enc2] = parts as [string, string, string, string];
        const msgSignature = weChatSignature([t, ts, n, enc]);
        expect(verifyWeChatMsgSignature({ token: t2, timestamp: ts2, nonce: n2, encrypt: enc2, msgSignature })).toBe(false);
        if (which < 3) {
          const signature = weChatSignature([t, ts, n]);
          expect(verifyWeChatSignature({ token: t2, timestamp: ts2, nonce: n2, signature })).toBe(false);
        }
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('an empty part never verifies (an empty token would make signatures forgeable)', () => {
    fc.assert(
      fc.property(timestamp, nonce, fc.nat({ max: 2 }), (ts, n, which) => {
        const parts = ['token', ts, n];
        parts[which] = '';
        const [t2, ts2, n2] = parts as [string, string, string];
        expect(verifyWeChatSignature({ token: t2, timestamp: ts2, nonce: n2, signature: weChatSignature(parts) })).toBe(false);
      }),
      { numRuns: RUNS.medium },
    );
  });
});

describe('isFreshTimestamp', () => {
  it('never throws; true only for digit strings within the window', () => {
    fc.assert(
      fc.property(queryValue, fc.oneof(fc.double(), fc.integer()), (value, nowMs) => {
        const fresh = isFreshTimestamp(value as string, nowMs);
        expect(typeof fresh).toBe('boolean');
        if (fresh) {
          expect(value).toMatch(/^\d{1,15}$/);
          expect(Math.abs(nowMs / 1000 - Number(value))).toBeLessThanOrEqual(300);
        }
      }),
      { numRuns: RUNS.cheap },
    );
  });
});
