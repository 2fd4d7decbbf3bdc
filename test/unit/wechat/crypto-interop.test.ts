/**
 * The bridge's WXBizMsgCrypt against node-webot's wechat-crypto, an implementation written by
 * others: each must read what the other writes, for every pad length (1..32, a whole block when
 * the plaintext is already aligned), and both must sign alike. The WeChat emulator's own crypto
 * (src/sandbox/wechat/crypto.ts) is held to the same.
 */
import WXBizMsgCrypt from 'wechat-crypto';
import { aesKeyOf, platformEncrypt, platformSignature } from '../../../src/sandbox/wechat/crypto';
import { decodeEncodingAesKey, decryptWeChatMessage, encryptWeChatMessage } from '../../../src/wechat/crypto';
import { weChatSignature } from '../../../src/wechat/signature';

const TOKEN = 'spamtest';
const ENCODING_AES_KEY = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const APP_ID = 'wx2c2769f8efd9abc2';
const independent = new WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, APP_ID);
const bridgeKey = decodeEncodingAesKey(ENCODING_AES_KEY);

// random(16) + length(4) + AppID(18) = 38 bytes around the message: 32 message lengths cover every pad.
const MESSAGES = Array.from({ length: 33 }, (_, n) => `<xml><Content><![CDATA[${'x'.repeat(n)}]]></Content></xml>`);

describe('bridge crypto and node-webot wechat-crypto read each other', () => {
  test('the AES key decodes alike', () => {
    expect(bridgeKey.equals(independent.key)).toBe(true);
  });

  test.each(MESSAGES.map((m, i) => [i, m] as const))('bridge encrypts, wechat-crypto decrypts (message of %i bytes more)', (_n, message) => {
    const encrypt = encryptWeChatMessage(message, bridgeKey, APP_ID);
    expect(independent.decrypt(encrypt)).toEqual({ message, id: APP_ID });
    // wechat-crypto strips any pad of 1..32 it finds, so the pad itself is checked here: to a multiple of 32.
    expect(Buffer.from(encrypt, 'base64').length % 32).toBe(0);
  });

  test.each(MESSAGES.map((m, i) => [i, m] as const))('wechat-crypto encrypts, bridge decrypts (message of %i bytes more)', (_n, message) => {
    expect(decryptWeChatMessage(independent.encrypt(message), bridgeKey, APP_ID)).toBe(message);
  });

  test('non-ASCII text survives both ways', () => {
    const message = '<xml><Content><![CDATA[你好，世界 😀]]></Content></xml>';
    expect(independent.decrypt(encryptWeChatMessage(message, bridgeKey, APP_ID)).message).toBe(message);
    expect(decryptWeChatMessage(independent.encrypt(message), bridgeKey, APP_ID)).toBe(message);
  });

  test('msg_signature and the plain signature agree (the parts in any order)', () => {
    const encrypt = independent.encrypt('<xml/>');
    expect(weChatSignature([TOKEN, '1409304348', 'xxxxxx', encrypt])).toBe(independent.getSignature('1409304348', 'xxxxxx', encrypt));
    expect(weChatSignature([encrypt, 'xxxxxx', '1409304348', TOKEN])).toBe(independent.getSignature('1409304348', 'xxxxxx', encrypt));
    // An empty fourth part sorts first and adds nothing: wechat-crypto's form of the plain signature.
    expect(weChatSignature([TOKEN, '1714036504', '1514711492'])).toBe(independent.getSignature('1714036504', '1514711492', ''));
  });
});

describe("the WeChat emulator's crypto and node-webot wechat-crypto agree", () => {
  const emulatorKey = aesKeyOf(ENCODING_AES_KEY);

  test.each(MESSAGES.map((m, i) => [i, m] as const))('the emulator encrypts, wechat-crypto decrypts (message of %i bytes more)', (_n, message) => {
    expect(independent.decrypt(platformEncrypt(message, emulatorKey, APP_ID))).toEqual({ message, id: APP_ID });
    // wechat-crypto strips any pad of 1..32 it finds, so the pad is checked here: to a multiple of 32.
    expect(Buffer.from(platformEncrypt(message, emulatorKey, APP_ID), 'base64').length % 32).toBe(0);
  });

  test('signatures agree', () => {
    expect(platformSignature([TOKEN, '1409304348', 'xxxxxx', 'abc'])).toBe(independent.getSignature('1409304348', 'xxxxxx', 'abc'));
  });

});
