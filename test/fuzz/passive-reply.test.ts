/**
 * Fuzzing the passive reply builder against the WeChat emulator's own reader (written from the
 * docs, not from the bridge): any text an agent sends, `]]>` and control characters included,
 * either becomes a reply WeChat reads back exactly, encrypted or not, or is refused with a 400.
 */
import fc from 'fast-check';
import { InvalidInputError } from '../../src/errors';
import { aesKeyOf } from '../../src/sandbox/wechat/crypto';
import { readPassiveReply } from '../../src/sandbox/wechat/passive-reply';
import { buildEncryptedReplyXml } from '../../src/wechat/crypto';
import { buildPassiveTextReplyXml } from '../../src/wechat/passive-reply';
import { onlyThrows, RUNS } from './support';

const AES_KEY_TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
const APP_ID = 'wx2c2769f8efd9abc2';
const TOKEN = 'spamtest';
// Text as agents send it: any Unicode, with CDATA terminators and XML specials mixed in.
const agentText = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.array(fc.constantFrom(']]>', ']]', '<', '&amp;', '回复', '😀', ' ', 'a'), { maxLength: 30 }).map((parts) => parts.join('')),
);

describe('passive text replies', () => {
  it('are read back by WeChat exactly, plain and encrypted, or refused with a 400', () => {
    fc.assert(
      fc.property(agentText, fc.boolean(), (content, encrypted) => {
        const built = onlyThrows(InvalidInputError, () =>
          buildPassiveTextReplyXml({ toUser: 'oUser', fromAccount: 'gh_account', createTime: 1_700_000_000, content }),
        );
        if (!built.ok) return;
        const body = encrypted
          ? buildEncryptedReplyXml({ plaintext: built.value, aesKey: aesKeyOf(AES_KEY_TEXT), appId: APP_ID, token: TOKEN, timestamp: '1700000000', nonce: '42' })
          : built.value;
        const verdict = readPassiveReply(body, {
          openid: 'oUser',
          accountId: 'gh_account',
          mode: encrypted ? 'safe' : 'plain',
          token: TOKEN,
          appId: APP_ID,
          aesKey: aesKeyOf(AES_KEY_TEXT),
        });
        expect(verdict).toMatchObject({ kind: 'reply', reply: { msgType: 'text', text: content } });
      }),
      { numRuns: RUNS.medium },
    );
  });
});
