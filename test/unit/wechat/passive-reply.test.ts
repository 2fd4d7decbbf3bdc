import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../../src/errors';
import { buildPassiveReplyXml, buildPassiveTextReplyXml, passiveReplyProblem } from '../../../src/wechat/passive-reply';
import { parseWeChatXml } from '../../../src/wechat/xml';

const fixture = (name: string): string => readFileSync(join(__dirname, '../../fixtures/replies', name), 'utf8');
const envelope = { toUser: 'toUser', fromAccount: 'fromUser', createTime: 12345678 };

// Each official sample (test/fixtures/replies, from the passive reply doc) and the event body an agent sends for it.
const cases: Array<[file: string, body: Record<string, unknown>]> = [
  ['text.xml', { content: '你好' }],
  ['image.xml', { msg_type: 'image', media_id: 'media_id' }],
  ['voice.xml', { msg_type: 'voice', voice: { media_id: 'media_id' } }],
  ['video.xml', { msg_type: 'video', media_id: 'media_id', title: 'title', description: 'description' }],
  [
    'music.xml',
    { msg_type: 'music', title: 'TITLE', description: 'DESCRIPTION', musicurl: 'MUSIC_Url', hqmusicurl: 'HQ_MUSIC_Url', thumb_media_id: 'media_id' },
  ],
  ['news.xml', { msg_type: 'news', articles: [{ title: 'title1', description: 'description1', picurl: 'picurl', url: 'url' }] }],
];

describe('buildPassiveReplyXml', () => {
  it.each(cases)('builds the documented %s', (file, body) => {
    const built = buildPassiveReplyXml({ ...envelope, body });
    expect(parseWeChatXml(built)).toEqual(parseWeChatXml(fixture(file)));
  });

  it('keeps the official field order of the text sample', () => {
    expect(buildPassiveReplyXml({ ...envelope, body: { content: '你好' } })).toBe(fixture('text.xml').replace(/\n/g, ''));
  });

  it('keeps ids as strings and a ]]> in the text intact', () => {
    const xml = buildPassiveTextReplyXml({ toUser: '00123', fromAccount: 'gh_1', createTime: 1, content: 'a]]>b' });
    const parsed = parseWeChatXml(xml);
    expect(parsed.ToUserName).toBe('00123');
    expect(parsed.Content).toBe('a]]>b');
  });

  it('refuses types that only the customer-service API knows, and bad bodies', () => {
    expect(() => buildPassiveReplyXml({ ...envelope, body: { msg_type: 'mpnews', media_id: 'm' } })).toThrow(/cannot be a passive reply/);
    expect(() => buildPassiveReplyXml({ ...envelope, body: { content: '' } })).toThrow(InvalidInputError);
    expect(() => buildPassiveReplyXml({ ...envelope, body: { content: 5 } })).toThrow(/must be a string/);
    expect(passiveReplyProblem({ msg_type: 'msgmenu', list: [{ id: '1', content: 'x' }] })).toMatch(/msgmenu cannot be a passive reply/);
    expect(passiveReplyProblem({ msg_type: 'image' })).toMatch(/needs media_id/);
    expect(passiveReplyProblem({ content: 'hi' })).toBeUndefined();
  });
});
