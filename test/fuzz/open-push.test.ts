/**
 * Fuzzing openPush, the whole push pipeline: whatever the body and the query, it answers with an
 * opened push or a typed refusal (400/401 with a reason) and never throws; damaged real pushes are
 * refused or still read as a message whose every field is a string.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { decodeEncodingAesKey, encryptWeChatMessage } from '../../src/wechat/crypto';
import { openPush, type OpenedPush, type PushAccount, type PushRefusal } from '../../src/wechat/inbound';
import { weChatSignature } from '../../src/wechat/signature';
import { anyText, mutated, RUNS } from './support';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const TOKEN = 'fuzzToken123';
const APP_ID = 'wx1234567890abcdef';
const KEY = decodeEncodingAesKey('abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG');
const TIMESTAMP = '1700000000';
const NONCE = '424242';
const RECEIVED_AT = Number(TIMESTAMP) * 1000;
const ACCOUNT: PushAccount = { token: TOKEN, appId: APP_ID, aesKeys: [KEY] };
const SIGNATURE = weChatSignature([TOKEN, TIMESTAMP, NONCE]);

/** The result is one of the two shapes, and a refusal is a short 4xx with a reason. */
function wellFormed(result: OpenedPush | PushRefusal): boolean {
  if (result.kind === 'refused') return (result.status === 400 || result.status === 401) && result.reason.length > 0;
  const { message } = result;
  return (
    [message.toUserName, message.fromUserName, message.createTime, message.msgType].every((v) => typeof v === 'string') &&
    Object.values(message.fields).every((v) => typeof v === 'string')
  );
}

describe('openPush on arbitrary input', () => {
  test('any body with a valid plain query: opened or refused, never thrown', () => {
    fc.assert(
      fc.property(fc.oneof(anyText(200), mutated(fc.constant(TEXT))), (body) => {
        expect(wellFormed(openPush({ query: { timestamp: TIMESTAMP, nonce: NONCE, signature: SIGNATURE }, body, account: ACCOUNT, receivedAtMs: RECEIVED_AT }))).toBe(true);
      }),
      { numRuns: RUNS.expensive },
    );
  });

  test('any query values: opened or refused, never thrown', () => {
    const value = fc.option(anyText(60), { nil: undefined });
    fc.assert(
      fc.property(value, value, value, value, value, fc.integer(), (timestamp, nonce, signature, msgSignature, encryptType, receivedAtMs) => {
        const result = openPush({
          query: { timestamp, nonce, signature, msg_signature: msgSignature, encrypt_type: encryptType },
          body: TEXT,
          account: ACCOUNT,
          receivedAtMs,
        });
        expect(wellFormed(result)).toBe(true);
        // Without WeChat's signature nothing opens.
        expect(result.kind).toBe('refused');
      }),
      { numRuns: RUNS.cheap },
    );
  });

  test('a damaged safe-mode envelope whose msg_signature matches: opened or refused, never thrown', () => {
    const encrypt = encryptWeChatMessage(TEXT, KEY, APP_ID, Buffer.alloc(16, 7));
    fc.assert(
      fc.property(mutated(fc.constant(encrypt), 3, ['=', '+', '/', 'A', '\u0000', '%']), (damaged) => {
        const result = openPush({
          query: {
            timestamp: TIMESTAMP,
            nonce: NONCE,
            signature: SIGNATURE,
            msg_signature: weChatSignature([TOKEN, TIMESTAMP, NONCE, damaged]),
            encrypt_type: 'aes',
          },
          body: `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[${damaged}]]></Encrypt></xml>`,
          account: ACCOUNT,
          receivedAtMs: RECEIVED_AT,
        });
        expect(wellFormed(result)).toBe(true);
      }),
      { numRuns: RUNS.medium },
    );
  });
});
