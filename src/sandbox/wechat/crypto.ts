/**
 * The WeChat platform's side of request signing and safe-mode encryption, written for the emulator
 * from WeChat's description and kept apart from the bridge's `src/wechat` on purpose: the emulator
 * checks the bridge, so a mistake shared by both would pass every test. It follows Tencent's
 * WXBizMsgCrypt samples (and node-webot's wechat-crypto, which the unit tests compare it with):
 *
 * - signature = sha1(join(sort(parts))) over [Token, timestamp, nonce] (plus Encrypt for
 *   msg_signature): "将token、timestamp、nonce三个参数进行字典序排序…拼接成一个字符串进行sha1加密"
 *   (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html).
 * - AESKey = Base64_Decode(EncodingAESKey + "="), AES-256-CBC, IV = the key's first 16 bytes,
 *   plaintext random(16) ‖ msg_len (4 bytes, network order) ‖ msg ‖ AppID, "PKCS#7填充至32字节的倍数"
 *   (https://developer.work.weixin.qq.com/document/path/90968, the same scheme for Official Accounts:
 *   https://developers.weixin.qq.com/doc/oplatform/Third-party_Platforms/2.0/api/Before_Develop/message_push.html).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The PKCS#7 block WeChat pads to: 32 bytes, not AES's 16. */
const WECHAT_PAD_BLOCK = 32;

/** sha1 hex of the parts sorted as strings and joined, as in Tencent's samples. */
export function platformSignature(parts: readonly string[]): string {
  return createHash('sha1').update([...parts].sort().join(''), 'utf8').digest('hex');
}

/** The 32-byte AES key an EncodingAESKey (43 characters) stands for. */
export function aesKeyOf(encodingAesKey: string): Buffer {
  const key = Buffer.from(`${encodingAesKey}=`, 'base64');
  if (encodingAesKey.length !== 43 || key.length !== 32) throw new Error('an EncodingAESKey is 43 characters (32 bytes)');
  return key;
}

/** The `Encrypt` text WeChat sends for `message` to the account `appId`. */
export function platformEncrypt(message: string, aesKey: Buffer, appId: string): string {
  const text = Buffer.from(message, 'utf8');
  const header = Buffer.alloc(20);
  randomBytes(16).copy(header, 0);
  header.writeUInt32BE(text.length, 16);
  const plain = Buffer.concat([header, text, Buffer.from(appId, 'utf8')]);
  const padLength = WECHAT_PAD_BLOCK - (plain.length % WECHAT_PAD_BLOCK);
  const cipher = createCipheriv('aes-256-cbc', aesKey, aesKey.subarray(0, 16)).setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.concat([plain, Buffer.alloc(padLength, padLength)])), cipher.final()]).toString('base64');
}

/** The message inside an `Encrypt` text for `appId` (how WeChat reads a safe-mode passive reply); throws when it is not one. */
export function platformDecrypt(encrypt: string, aesKey: Buffer, appId: string): string {
  const decipher = createDecipheriv('aes-256-cbc', aesKey, aesKey.subarray(0, 16)).setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(Buffer.from(encrypt, 'base64')), decipher.final()]);
  const padLength = padded[padded.length - 1] ?? 0;
  if (padLength < 1 || padLength > WECHAT_PAD_BLOCK || padded.subarray(padded.length - padLength).some((b) => b !== padLength)) {
    throw new Error('bad PKCS#7 padding (32-byte blocks)');
  }
  const plain = padded.subarray(0, padded.length - padLength);
  const length = plain.readUInt32BE(16);
  if (20 + length > plain.length) throw new Error('message length beyond the plaintext');
  if (plain.subarray(20 + length).toString('utf8') !== appId) throw new Error('receive_id is not the AppID');
  return plain.subarray(20, 20 + length).toString('utf8');
}
