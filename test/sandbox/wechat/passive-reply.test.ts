/**
 * How the WeChat emulator reads an answer to a push: the official passive reply samples are replies,
 * what WeChat refuses (empty text, JSON, a reply to someone else, plaintext in safe mode, a bad
 * signature) is refused, and the public encrypted reply envelope verifies and decrypts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { aesKeyOf } from '../../../src/sandbox/wechat/crypto';
import { readPassiveReply, type ReplyContext } from '../../../src/sandbox/wechat/passive-reply';

const fixture = (name: string): string => readFileSync(join(__dirname, '../../fixtures/replies', name), 'utf8');
// The samples are written from the account `fromUser` to the user `toUser`.
const plain: ReplyContext = { openid: 'toUser', accountId: 'fromUser', mode: 'plain', token: 't', appId: 'wx1' };

describe('readPassiveReply', () => {
  it('takes success and an empty body as no reply', () => {
    expect(readPassiveReply(fixture('ack-success.txt'), plain)).toEqual({ kind: 'none' });
    expect(readPassiveReply('', plain)).toEqual({ kind: 'none' });
  });

  it.each([
    ['text.xml', 'text', '你好'],
    ['image.xml', 'image', '[image]'],
    ['voice.xml', 'voice', '[voice]'],
    ['video.xml', 'video', '[video]'],
    ['music.xml', 'music', '[music] TITLE'],
    ['news.xml', 'news', '[news] title1'],
  ])('reads the official %s sample', (file, msgType, text) => {
    expect(readPassiveReply(fixture(file), plain)).toMatchObject({ kind: 'reply', reply: { msgType, text } });
  });

  it('refuses what shows the user 该公众号暂时无法提供服务', () => {
    const reason = (body: string, ctx: ReplyContext = plain) => {
      const verdict = readPassiveReply(body, ctx);
      return verdict.kind === 'invalid' ? verdict.reason : verdict.kind;
    };
    expect(reason(fixture('text.xml').replace('你好', ''))).toBe('empty Content');
    expect(reason('{"msgtype":"text"}')).toBe('the answer is neither success nor XML');
    expect(reason(fixture('text.xml'), { ...plain, openid: 'someone-else' })).toBe('ToUserName is not the user');
    expect(reason(fixture('news.xml').replace('<ArticleCount>1', '<ArticleCount>2'))).toBe('ArticleCount does not match the items');
    expect(reason(fixture('text.xml').replace('[text]', '[transfer_customer_service]'))).toMatch(/cannot be a reply/);
    expect(reason(fixture('text.xml'), { ...plain, mode: 'safe', aesKey: Buffer.alloc(32) })).toBe('safe mode: the reply must be encrypted');
  });

  it('verifies and decrypts the public encrypted reply envelope (token AAAAA)', () => {
    const ctx: ReplyContext = {
      openid: 'toUser',
      accountId: 'fromUser',
      mode: 'safe',
      token: 'AAAAA',
      appId: 'wx134c8103faa5a59e',
      aesKey: aesKeyOf('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    };
    const envelope = fixture('encrypted-envelope.xml');
    // Its plaintext is the doc's demo (`<demo_resp>`), not a reply: decrypted, then refused for its content.
    expect(readPassiveReply(envelope, ctx)).toEqual({ kind: 'invalid', reason: 'ToUserName is not the user' });
    expect(readPassiveReply(envelope, { ...ctx, token: 'BBBBB' })).toEqual({ kind: 'invalid', reason: 'the reply MsgSignature does not match' });
    expect(readPassiveReply(envelope, { ...ctx, appId: 'wx0000000000000000' })).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/receive_id/) });
  });
});
