/**
 * WXBizMsgCrypt, the safe/compatible-mode message encryption of WeChat Official Accounts.
 *
 *   AESKey    = base64decode(EncodingAESKey + '=')            (32 bytes)
 *   FullStr   = random(16) | uint32be(len(msg)) | msg | AppID
 *   Encrypt   = base64(AES-256-CBC(key, iv = key[0:16], PKCS#7-pad-to-32(FullStr)))
 *
 * The padding block is 32 bytes, not AES's 16, so Node's built-in padding is switched off: with it,
 * every message whose pad is above 16 fails with "bad decrypt" (half of all real traffic).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { InvalidInputError } from '../errors';
import { weChatSignature } from './signature';
import { buildWeChatXml } from './xml';

/** Tencent's WXBizMsgCrypt error codes (the subset this module can raise). */
export const WeChatCryptoErrorCode = {
  illegalAesKey: -40004,
  appIdMismatch: -40005,
  decryptFailed: -40007,
  illegalBuffer: -40008,
  base64DecodeFailed: -40010,
} as const;
export type WeChatCryptoErrorCode = (typeof WeChatCryptoErrorCode)[keyof typeof WeChatCryptoErrorCode];

/** A message that cannot be decrypted is bad input (HTTP 400); `code` says why, in Tencent's numbering. */
export class WeChatCryptoError extends InvalidInputError {
  readonly code: WeChatCryptoErrorCode;
  constructor(code: WeChatCryptoErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(400, message, options);
    this.name = 'WeChatCryptoError';
    this.code = code;
  }
}

const BLOCK = 32;
const RANDOM_BYTES = 16;
const ENCODING_AES_KEY = /^[A-Za-z0-9]{43}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The 32-byte AES key from the 43-character EncodingAESKey. The key itself never appears in messages. */
export function decodeEncodingAesKey(encodingAesKey: string): Buffer {
  if (typeof encodingAesKey !== 'string' || !ENCODING_AES_KEY.test(encodingAesKey)) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalAesKey, 'EncodingAESKey must be 43 characters [A-Za-z0-9]');
  }
  const key = Buffer.from(`${encodingAesKey}=`, 'base64');
  if (key.length !== 32) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalAesKey, 'EncodingAESKey does not decode to 32 bytes');
  }
  return key;
}

/** Decrypts an `Encrypt` field and checks it was addressed to `appId`; returns the inner XML exactly. */
export function decryptWeChatMessage(encrypt: string, aesKey: Buffer, appId: string): string {
  checkKey(aesKey);
  // Buffer.from(…, 'base64') silently skips junk, so the alphabet is checked first.
  if (typeof encrypt !== 'string' || encrypt === '' || !BASE64.test(encrypt)) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.base64DecodeFailed, 'Encrypt is not valid base64');
  }
  const ciphertext = Buffer.from(encrypt, 'base64');

  let padded: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-cbc', aesKey, aesKey.subarray(0, 16));
    decipher.setAutoPadding(false);
    padded = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch (cause) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.decryptFailed, 'Encrypt could not be decrypted', { cause });
  }

  const plain = stripPkcs7(padded);
  if (plain.length < RANDOM_BYTES + 4) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalBuffer, 'decrypted message is too short');
  }
  const msgLength = plain.readUInt32BE(RANDOM_BYTES);
  const msgEnd = RANDOM_BYTES + 4 + msgLength;
  if (msgEnd > plain.length) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalBuffer, 'decrypted message length is out of range');
  }
  if (plain.subarray(msgEnd).toString('utf8') !== appId) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.appIdMismatch, 'message is not addressed to this AppID');
  }
  return plain.subarray(RANDOM_BYTES + 4, msgEnd).toString('utf8');
}

/** Encrypts `plaintext` for `appId`. `random` (16 bytes) is fixed only by tests; it must be fresh per message. */
export function encryptWeChatMessage(
  plaintext: string,
  aesKey: Buffer,
  appId: string,
  random: Buffer = randomBytes(RANDOM_BYTES),
): string {
  checkKey(aesKey);
  if (random.length !== RANDOM_BYTES) throw new RangeError(`random prefix must be ${RANDOM_BYTES} bytes`);
  const msg = Buffer.from(plaintext, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(msg.length);
  const body = Buffer.concat([random, length, msg, Buffer.from(appId, 'utf8')]);
  const pad = BLOCK - (body.length % BLOCK); // 1..32: a whole block when already aligned
  const cipher = createCipheriv('aes-256-cbc', aesKey, aesKey.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(body), cipher.update(Buffer.alloc(pad, pad)), cipher.final()]).toString('base64');
}

/**
 * The safe-mode passive reply envelope:
 * `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`, signed with msg_signature.
 * `timestamp` is Unix seconds (digits); WeChat accepts the request's nonce being echoed.
 */
export function buildEncryptedReplyXml(input: {
  plaintext: string;
  aesKey: Buffer;
  appId: string;
  token: string;
  timestamp: string;
  nonce: string;
  random?: Buffer;
}): string {
  if (!/^\d{1,15}$/.test(input.timestamp)) throw new RangeError('timestamp must be Unix seconds');
  const encrypt = encryptWeChatMessage(input.plaintext, input.aesKey, input.appId, input.random);
  return buildWeChatXml({
    Encrypt: encrypt,
    MsgSignature: weChatSignature([input.token, input.timestamp, input.nonce, encrypt]),
    TimeStamp: Number(input.timestamp),
    Nonce: input.nonce,
  });
}

function checkKey(aesKey: Buffer): void {
  if (!Buffer.isBuffer(aesKey) || aesKey.length !== 32) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalAesKey, 'AES key must be 32 bytes');
  }
}

// PKCS#7 to a 32-byte block: the last byte n (1..32) says how many bytes of value n were appended.
// Anything else means a wrong key or a damaged message, never something to guess around.
function stripPkcs7(padded: Buffer): Buffer {
  const pad = padded.length === 0 ? 0 : padded[padded.length - 1]!;
  if (pad < 1 || pad > BLOCK || pad > padded.length) {
    throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalBuffer, 'invalid padding');
  }
  for (let i = padded.length - pad; i < padded.length; i++) {
    if (padded[i] !== pad) throw new WeChatCryptoError(WeChatCryptoErrorCode.illegalBuffer, 'invalid padding');
  }
  return padded.subarray(0, padded.length - pad);
}
