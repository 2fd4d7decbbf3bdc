/**
 * WeChat request signatures: the plain `signature` on every callback and the safe-mode `msg_signature`.
 *
 * signature     = sha1_hex(join(sort([token, timestamp, nonce])))
 * msg_signature = sha1_hex(join(sort([token, timestamp, nonce, Encrypt])))
 *
 * The verifiers never throw: anything missing or malformed is simply "not signed by WeChat".
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const SHA1_HEX = /^[0-9a-fA-F]{40}$/;
const DIGITS = /^\d{1,15}$/;

/**
 * sha1 hex of the sorted concatenation. Sorting is by UTF-8 bytes (= code point order), as in
 * Tencent's PHP/Python samples; JavaScript's default UTF-16 sort would differ only for characters
 * outside the BMP, which the real inputs (alphanumeric token, digits, base64) never contain.
 */
export function weChatSignature(parts: readonly string[]): string {
  // Without surrogates (characters outside the BMP), UTF-16 order is code point order too, so the
  // strings sort as they are, with no buffer per part: this runs on every push.
  if (!parts.some((part) => SURROGATE.test(part))) return createHash('sha1').update([...parts].sort().join(''), 'utf8').digest('hex');
  const sorted = parts.map((part) => Buffer.from(part, 'utf8')).sort((a, b) => Buffer.compare(a, b));
  return createHash('sha1').update(Buffer.concat(sorted)).digest('hex');
}

const SURROGATE = /[\ud800-\udfff]/;

export function verifyWeChatSignature(input: {
  token: string;
  timestamp?: string;
  nonce?: string;
  signature?: string;
}): boolean {
  return verifySigned(() => [[input.token, input.timestamp, input.nonce], input.signature]);
}

export function verifyWeChatMsgSignature(input: {
  token: string;
  timestamp?: string;
  nonce?: string;
  encrypt: string;
  msgSignature?: string;
}): boolean {
  return verifySigned(() => [[input.token, input.timestamp, input.nonce, input.encrypt], input.msgSignature]);
}

/** Unix-seconds `timestamp` (digits only) within `windowSeconds` of `nowMs`, either direction. */
export function isFreshTimestamp(timestamp: string | undefined, nowMs: number, windowSeconds = 300): boolean {
  if (typeof timestamp !== 'string' || !DIGITS.test(timestamp) || !Number.isFinite(nowMs)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= windowSeconds;
}

// Query values arrive from Express and may be arrays or objects at run time whatever the static type says,
// hence the `unknown` checks; reading the input happens inside the try so that not even a null input throws.
// An empty token would make signatures forgeable by anyone, so it never verifies.
function verifySigned(read: () => readonly [parts: readonly unknown[], signature: unknown]): boolean {
  try {
    const [parts, signature] = read();
    if (typeof signature !== 'string' || !SHA1_HEX.test(signature)) return false;
    if (!parts.every((part): part is string => typeof part === 'string' && part !== '')) return false;
    const expected = Buffer.from(weChatSignature(parts), 'latin1');
    const given = Buffer.from(signature.toLowerCase(), 'latin1');
    return expected.length === given.length && timingSafeEqual(expected, given);
  } catch {
    return false;
  }
}
