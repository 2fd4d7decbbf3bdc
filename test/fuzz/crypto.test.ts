/**
 * Fuzzing WXBizMsgCrypt: encrypt → decrypt gives back any Unicode plaintext for any AppID and key;
 * a damaged ciphertext (bit flips, truncation, base64 garbage), a wrong key or a wrong AppID only
 * ever throws WeChatCryptoError (an InvalidInputError, HTTP 400), never anything else.
 *
 * There is no MAC in WXBizMsgCrypt (msg_signature is the integrity check), so a flipped bit may
 * still decrypt to something: the property is "a string or WeChatCryptoError", not "always refused".
 */
import fc from 'fast-check';
import { InvalidInputError } from '../../src/errors';
import { decodeEncodingAesKey, decryptWeChatMessage, encryptWeChatMessage, WeChatCryptoError } from '../../src/wechat/crypto';
import { mustThrow, onlyThrows, RUNS, unicodeText } from './support';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const encodingAesKey = fc.string({ unit: fc.constantFrom(...ALNUM), minLength: 43, maxLength: 43 });
const aesKey = fc.oneof(
  encodingAesKey.map(decodeEncodingAesKey),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes)),
);
const random16 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Buffer.from(bytes));
const appId = fc.oneof(fc.stringMatching(/^wx[0-9a-f]{16}$/), unicodeText(30));
/** Plaintexts around the 32-byte padding boundaries, and long ones. */
const plaintext = fc.oneof(unicodeText(80), unicodeText(3000), fc.integer({ min: 0, max: 100 }).map((n) => 'x'.repeat(n)));

const isCryptoError = (error: WeChatCryptoError) =>
  error instanceof InvalidInputError && error.status === 400 && typeof error.code === 'number';

/** decrypt, allowing only a result or WeChatCryptoError. */
const tryDecrypt = (encrypt: unknown, key: unknown, id: unknown) =>
  onlyThrows(WeChatCryptoError, () => decryptWeChatMessage(encrypt as string, key as Buffer, id as string), isCryptoError);

const sealed = fc.record({ text: plaintext, key: aesKey, id: appId, random: random16 }).map((input) => ({
  ...input,
  encrypt: encryptWeChatMessage(input.text, input.key, input.id, input.random),
}));

describe('encryptWeChatMessage → decryptWeChatMessage', () => {
  it('round trips any Unicode plaintext, for any AppID and key', () => {
    fc.assert(
      fc.property(sealed, ({ text, key, id, encrypt }) => {
        expect(encrypt).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
        expect(Buffer.from(encrypt, 'base64').length % 32).toBe(0);
        expect(decryptWeChatMessage(encrypt, key, id)).toBe(text);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('any EncodingAESKey-shaped text decodes to a 32-byte key; anything else is WeChatCryptoError', () => {
    fc.assert(
      fc.property(fc.oneof(encodingAesKey, fc.anything(), fc.string({ maxLength: 60 })), (text) => {
        const result = onlyThrows(WeChatCryptoError, () => decodeEncodingAesKey(text as string), isCryptoError);
        if (result.ok) expect(result.value.length).toBe(32);
        if (typeof text === 'string' && /^[A-Za-z0-9]{43}$/.test(text)) expect(result.ok).toBe(true);
      }),
      { numRuns: RUNS.cheap },
    );
  });
});

describe('decryptWeChatMessage on damaged or foreign input', () => {
  it('bit flips anywhere in the ciphertext: a string or WeChatCryptoError', () => {
    fc.assert(
      fc.property(sealed, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 }), ({ key, id, encrypt }, flips) => {
        const bytes = Buffer.from(encrypt, 'base64');
        for (const [at, bit] of flips) bytes[at % bytes.length] = bytes[at % bytes.length]! ^ (1 << bit);
        tryDecrypt(bytes.toString('base64'), key, id);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('truncated, extended or re-blocked ciphertext: a string or WeChatCryptoError', () => {
    const damage = fc.oneof(
      fc.nat().map((n) => (b64: string) => b64.slice(0, n % (b64.length + 1))),
      fc.nat().map((n) => (b64: string) => {
        const bytes = Buffer.from(b64, 'base64');
        return bytes.subarray(0, n % (bytes.length + 1)).toString('base64');
      }),
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => (b64: string) => Buffer.concat([Buffer.from(b64, 'base64'), extra]).toString('base64')),
      fc.nat().map((n) => (b64: string) => {
        // Drop whole 16-byte blocks from the front: CBC then decrypts the rest with the wrong IV.
        const bytes = Buffer.from(b64, 'base64');
        return bytes.subarray(16 * (n % Math.max(1, bytes.length / 16))).toString('base64');
      }),
    );
    fc.assert(
      fc.property(sealed, damage, ({ key, id, encrypt }, mutate) => {
        tryDecrypt(mutate(encrypt), key, id);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('base64 garbage and arbitrary text: WeChatCryptoError (or, by a fluke of valid padding, a string)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.base64String({ maxLength: 200 }), unicodeText(100)), aesKey, appId, (garbage, key, id) => {
        tryDecrypt(garbage, key, id);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('a wrong key is refused', () => {
    fc.assert(
      fc.property(sealed, aesKey, ({ key, id, encrypt }, otherKey) => {
        fc.pre(!otherKey.equals(key));
        mustThrow(WeChatCryptoError, () => decryptWeChatMessage(encrypt, otherKey, id));
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('a wrong AppID is refused with appIdMismatch', () => {
    fc.assert(
      fc.property(sealed, appId, ({ key, id, encrypt }, otherId) => {
        fc.pre(otherId !== id);
        expect(mustThrow(WeChatCryptoError, () => decryptWeChatMessage(encrypt, key, otherId)).code).toBe(-40005);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('arguments of the wrong type: WeChatCryptoError, never a TypeError', () => {
    fc.assert(
      fc.property(fc.anything(), fc.oneof(fc.anything(), aesKey), fc.anything(), (encrypt, key, id) => {
        tryDecrypt(encrypt, key, id);
      }),
      { numRuns: RUNS.medium },
    );
  });
});
