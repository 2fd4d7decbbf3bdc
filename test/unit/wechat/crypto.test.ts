import { createCipheriv } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../../../src/errors';
import {
  buildEncryptedReplyXml,
  decodeEncodingAesKey,
  decryptWeChatMessage,
  encryptWeChatMessage,
  WeChatCryptoError,
} from '../../../src/wechat/crypto';
import { verifyWeChatMsgSignature, weChatSignature } from '../../../src/wechat/signature';
import { parseWeChatXml } from '../../../src/wechat/xml';

interface Vector {
  id: string;
  kind: string;
  input: Record<string, string>;
  expected: Record<string, unknown>;
  expected_reply_xml?: string;
}
const vectors = (
  JSON.parse(readFileSync(path.join(__dirname, '../../fixtures/crypto-vectors.json'), 'utf8')) as { vectors: Vector[] }
).vectors;
const byKind = (kind: string) => vectors.filter((v) => v.kind === kind).map((v) => [v.id, v] as const);

const KEY_TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const KEY = decodeEncodingAesKey(KEY_TEXT);
const APP_ID = 'wx2c2769f8efd9abc2';

/** Runs `fn` and returns the WeChatCryptoError it throws (failing the test if it throws anything else). */
function cryptoError(fn: () => unknown): WeChatCryptoError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WeChatCryptoError);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as WeChatCryptoError).status).toBe(400);
    return error as WeChatCryptoError;
  }
  throw new Error('expected a WeChatCryptoError');
}

/** AES-256-CBC with the WeChat IV over raw bytes, no padding added: for building malformed messages. */
function rawEncrypt(plain: Buffer, key = KEY): string {
  const cipher = createCipheriv('aes-256-cbc', key, key.subarray(0, 16));
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(plain), cipher.final()]).toString('base64');
}

function fullStr(msg: string, receiveId: string): Buffer {
  const body = Buffer.from(msg, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  return Buffer.concat([Buffer.alloc(16, 7), length, body, Buffer.from(receiveId, 'utf8')]);
}

describe('decodeEncodingAesKey', () => {
  test('decodes the 43-character key to 32 bytes', () => {
    expect(KEY).toHaveLength(32);
    expect(KEY.subarray(0, 3).toString('hex')).toBe('69b71d'); // base64 "abcd…" → 0x69 0xb7 0x1d
  });

  test.each([
    ['too short', KEY_TEXT.slice(0, 42)],
    ['too long', `${KEY_TEXT}A`],
    ['with "="', `${KEY_TEXT.slice(0, 42)}=`],
    ['with "+"', `${KEY_TEXT.slice(0, 42)}+`],
    ['with "/"', `/${KEY_TEXT.slice(1)}`],
    ['with a space', ` ${KEY_TEXT.slice(1)}`],
    ['empty', ''],
  ])('rejects a key %s with -40004, without echoing it', (_name, bad) => {
    const error = cryptoError(() => decodeEncodingAesKey(bad));
    expect(error.code).toBe(-40004);
    if (bad !== '') expect(error.message).not.toContain(bad);
  });
});

describe('official vectors', () => {
  test.each(byKind('decrypt_message'))('decrypt_message %s', (_id, v) => {
    const { token, timestamp, nonce, encrypt, msg_signature, encoding_aes_key, receive_id } = v.input;
    expect(verifyWeChatMsgSignature({ token: token!, timestamp, nonce, encrypt: encrypt!, msgSignature: msg_signature })).toBe(
      v.expected['msg_signature_valid'],
    );
    const plaintext = decryptWeChatMessage(encrypt!, decodeEncodingAesKey(encoding_aes_key!), receive_id!);
    expect(Buffer.from(plaintext, 'utf8').equals(Buffer.from(v.expected['plaintext'] as string, 'utf8'))).toBe(true);
  });

  test.each(byKind('decrypt_message'))('decrypt_message %s: the post body carries the same Encrypt', (_id, v) => {
    expect(parseWeChatXml(v.input['post_body']!)['Encrypt']).toBe(v.input['encrypt']);
  });

  test.each(byKind('verify_url_encrypted_echostr'))('verify_url_encrypted_echostr %s (WeCom style)', (_id, v) => {
    const { token, timestamp, nonce, echostr, msg_signature, encoding_aes_key, receive_id } = v.input;
    expect(verifyWeChatMsgSignature({ token: token!, timestamp, nonce, encrypt: echostr!, msgSignature: msg_signature })).toBe(
      true,
    );
    expect(decryptWeChatMessage(echostr!, decodeEncodingAesKey(encoding_aes_key!), receive_id!)).toBe(
      v.expected['response_body'],
    );
  });

  test.each(byKind('encrypt_fixed_random'))('encrypt_fixed_random %s', (_id, v) => {
    const { token, timestamp, nonce, random, plaintext, encoding_aes_key, receive_id } = v.input;
    const key = decodeEncodingAesKey(encoding_aes_key!);
    const encrypt = encryptWeChatMessage(plaintext!, key, receive_id!, Buffer.from(random!, 'utf8'));
    expect(encrypt).toBe(v.expected['encrypt']);
    expect(Buffer.from(encrypt, 'base64')).toHaveLength(v.expected['ciphertext_bytes'] as number);
    expect(decryptWeChatMessage(encrypt, key, receive_id!)).toBe(plaintext);
    if (typeof v.expected['msg_signature'] === 'string') {
      expect(weChatSignature([token!, timestamp!, nonce!, encrypt])).toBe(v.expected['msg_signature']);
    }
  });

  test.each(byKind('encrypt_fixed_random').filter(([, v]) => v.expected_reply_xml !== undefined))(
    'buildEncryptedReplyXml %s gives the documented envelope',
    (_id, v) => {
      const { token, timestamp, nonce, random, plaintext, encoding_aes_key, receive_id } = v.input;
      const xml = buildEncryptedReplyXml({
        plaintext: plaintext!,
        aesKey: decodeEncodingAesKey(encoding_aes_key!),
        appId: receive_id!,
        token: token!,
        timestamp: timestamp!,
        nonce: nonce!,
        random: Buffer.from(random!, 'utf8'),
      });
      // Same elements and values as the documented reply (which only adds newlines between them).
      expect(xml).toBe(v.expected_reply_xml!.replaceAll('\n', ''));
      expect(parseWeChatXml(xml)).toEqual(parseWeChatXml(v.expected_reply_xml!));
    },
  );
});

describe('decryptWeChatMessage failures', () => {
  const encrypt = encryptWeChatMessage('<xml><Content><![CDATA[hi]]></Content></xml>', KEY, APP_ID);

  test('AppID mismatch is -40005', () => {
    expect(cryptoError(() => decryptWeChatMessage(encrypt, KEY, 'wx0000000000000000')).code).toBe(-40005);
    expect(cryptoError(() => decryptWeChatMessage(encrypt, KEY, `${APP_ID}x`)).code).toBe(-40005);
    expect(cryptoError(() => decryptWeChatMessage(encrypt, KEY, '')).code).toBe(-40005);
  });

  test('a wrong key fails with a WeChatCryptoError', () => {
    const otherKey = decodeEncodingAesKey('A'.repeat(43));
    for (let i = 0; i < 50; i++) {
      const message = encryptWeChatMessage(`message ${i}`, KEY, APP_ID);
      expect([-40005, -40008]).toContain(cryptoError(() => decryptWeChatMessage(message, otherKey, APP_ID)).code);
    }
  });

  test('a key of the wrong size is -40004', () => {
    expect(cryptoError(() => decryptWeChatMessage(encrypt, KEY.subarray(0, 16), APP_ID)).code).toBe(-40004);
    expect(cryptoError(() => encryptWeChatMessage('x', Buffer.alloc(31), APP_ID)).code).toBe(-40004);
  });

  test('truncated ciphertext never escapes as another error type', () => {
    const bytes = Buffer.from(encrypt, 'base64');
    for (let length = 0; length < bytes.length; length++) {
      const truncated = bytes.subarray(0, length).toString('base64');
      const error = cryptoError(() => decryptWeChatMessage(truncated, KEY, APP_ID));
      expect([-40007, -40008, -40010]).toContain(error.code);
    }
  });

  test('garbled ciphertext never escapes as another error type', () => {
    const bytes = Buffer.from(encrypt, 'base64');
    for (let i = 0; i < bytes.length; i++) {
      const garbled = Buffer.from(bytes);
      garbled[i] = garbled[i]! ^ 0x5a;
      try {
        decryptWeChatMessage(garbled.toString('base64'), KEY, APP_ID);
      } catch (error) {
        expect(error).toBeInstanceOf(WeChatCryptoError);
      }
    }
  });

  test.each([0, 33, 255])('padding byte %i is -40008', (pad) => {
    const body = fullStr('<xml/>', APP_ID);
    const fill = 64 - body.length; // exactly enough to end on a block boundary with the chosen last byte
    const padded = Buffer.concat([body, Buffer.alloc(fill, pad)]);
    expect(cryptoError(() => decryptWeChatMessage(rawEncrypt(padded), KEY, APP_ID)).code).toBe(-40008);
  });

  test('inconsistent padding bytes are -40008', () => {
    const body = fullStr('<xml/>', APP_ID);
    const pad = 64 - body.length;
    const padded = Buffer.concat([body, Buffer.alloc(pad, pad)]);
    padded[padded.length - 2] = pad - 1;
    expect(cryptoError(() => decryptWeChatMessage(rawEncrypt(padded), KEY, APP_ID)).code).toBe(-40008);
  });

  test('a length field pointing past the end is -40008', () => {
    const body = fullStr('<xml/>', APP_ID);
    body.writeUInt32BE(0xffffffff, 16);
    const pad = 64 - body.length;
    const padded = Buffer.concat([body, Buffer.alloc(pad, pad)]);
    expect(cryptoError(() => decryptWeChatMessage(rawEncrypt(padded), KEY, APP_ID)).code).toBe(-40008);
  });

  test('a plaintext shorter than random + length is -40008', () => {
    const padded = Buffer.concat([Buffer.alloc(16, 1), Buffer.alloc(16, 16)]);
    expect(cryptoError(() => decryptWeChatMessage(rawEncrypt(padded), KEY, APP_ID)).code).toBe(-40008);
  });

  test.each([
    ['not base64 at all', 'this is not base64!'],
    ['an invalid character', `${encrypt.slice(0, 8)}*${encrypt.slice(9)}`],
    ['url-safe alphabet', `ab-_${encrypt.slice(4)}`],
    ['bad length', encrypt.slice(0, -1)],
    ['embedded whitespace', `${encrypt.slice(0, 8)} ${encrypt.slice(8)}`],
    ['empty', ''],
  ])('%s is -40010', (_name, bad) => {
    expect(cryptoError(() => decryptWeChatMessage(bad, KEY, APP_ID)).code).toBe(-40010);
  });

  test('well-formed base64 that is not whole AES blocks is -40007', () => {
    expect(cryptoError(() => decryptWeChatMessage(Buffer.alloc(40).toString('base64'), KEY, APP_ID)).code).toBe(-40007);
  });
});

describe('encryptWeChatMessage', () => {
  test('round-trips every plaintext length 0..100 with 32-byte padding (full block when aligned)', () => {
    const random = Buffer.alloc(16, 0xab);
    for (let length = 0; length <= 100; length++) {
      const plaintext = 'x'.repeat(length);
      const encrypt = encryptWeChatMessage(plaintext, KEY, APP_ID, random);
      const ciphertext = Buffer.from(encrypt, 'base64');
      const bodyLength = 16 + 4 + length + APP_ID.length;
      expect(ciphertext.length % 32).toBe(0);
      expect(ciphertext.length).toBe(bodyLength + (32 - (bodyLength % 32)));
      expect(decryptWeChatMessage(encrypt, KEY, APP_ID)).toBe(plaintext);
    }
  });

  test('round-trips multi-byte text and keeps the plaintext exact (no trimming)', () => {
    for (const plaintext of ['  我是中文 abcd123\n', '\u0000\u0002emoji 😀\r\n', '<xml>\n</xml>\n\n']) {
      expect(decryptWeChatMessage(encryptWeChatMessage(plaintext, KEY, APP_ID), KEY, APP_ID)).toBe(plaintext);
    }
  });

  test('uses a fresh random prefix by default', () => {
    const a = encryptWeChatMessage('same', KEY, APP_ID);
    const b = encryptWeChatMessage('same', KEY, APP_ID);
    expect(a).not.toBe(b);
  });

  test('refuses a random prefix that is not 16 bytes', () => {
    expect(() => encryptWeChatMessage('x', KEY, APP_ID, Buffer.alloc(15))).toThrow(RangeError);
  });
});
