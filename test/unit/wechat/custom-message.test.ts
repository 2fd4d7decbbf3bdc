import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../../../src/errors';
import { buildCustomSendBody, buildTypingBody, type CustomSendInput } from '../../../src/wechat/custom-message';

const FIXTURES = path.join(__dirname, '../../fixtures/custom-send');
const fixtureFiles = readdirSync(FIXTURES).filter((name) => name.endsWith('.json') && name !== 'index.json');
const loadFixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as Record<string, unknown>;

/** The outbound event body (flat form) that must produce each official example. */
const FLAT_EVENTS: Record<string, CustomSendInput> = {
  'text.json': { to: 'OPENID', body: { direction: 'outbound', content: 'Hello World' } }, // msg_type defaults to text
  'text-as-kf-account.json': { to: 'OPENID', body: { msg_type: 'text', content: 'Hello World', kf_account: 'test1@kftest' } },
  'text-with-miniprogram-link.json': {
    to: 'OPENID',
    body: {
      content:
        '文本内容<a href="http://www.qq.com" data-miniprogram-appid="appid" data-miniprogram-path="pages/index/index">点击跳小程序</a>',
    },
  },
  'image.json': { to: 'OPENID', body: { msg_type: 'image', media_id: 'MEDIA_ID', content: '[image]' } },
  'voice.json': { to: 'OPENID', body: { msg_type: 'voice', media_id: 'MEDIA_ID' } },
  'video.json': {
    to: 'OPENID',
    body: { msg_type: 'video', title: 'TITLE', description: 'DESCRIPTION', media_id: 'MEDIA_ID', thumb_media_id: 'MEDIA_ID' },
  },
  'music.json': {
    to: 'OPENID',
    body: {
      msg_type: 'music',
      musicurl: 'MUSIC_URL',
      hqmusicurl: 'HQ_MUSIC_URL',
      thumb_media_id: 'THUMB_MEDIA_ID',
      title: 'MUSIC_TITLE',
      description: 'MUSIC_DESCRIPTION',
    },
  },
  'news.json': {
    to: 'OPENID',
    body: { msg_type: 'news', title: 'Happy Day', description: 'Is Really A Happy Day', url: 'URL', picurl: 'PIC_URL' },
  },
  'mpnews.json': { to: 'OPENID', body: { msg_type: 'mpnews', media_id: 'MEDIA_ID' } },
  'mpnewsarticle.json': { to: 'OPENID', body: { msg_type: 'mpnewsarticle', article_id: 'ARTICLE_ID' } },
  'msgmenu.json': {
    to: 'OPENID',
    body: {
      msg_type: 'msgmenu',
      head_content: '您对本次服务是否满意呢? ',
      list: [
        { content: '满意', id: '101' },
        { id: '102', content: '不满意' },
      ],
      tail_content: '欢迎再次光临',
    },
  },
  'wxcard.json': { to: 'OPENID', msgType: 'wxcard', body: { card_id: '123dsdajkasd231jhksad' } },
  'miniprogrampage.json': {
    to: 'OPENID',
    body: { msg_type: 'miniprogrampage', appid: 'appid', pagepath: 'pagepath', thumb_media_id: 'thumb_media_id', title: 'title' },
  },
};

const TYPING: Record<string, Parameters<typeof buildTypingBody>> = {
  'typing.json': ['OPENID', 'Typing'],
  'typing-cancel.json': ['OPENID', 'CancelTyping'],
};

/** The nested form: the WeChat type object under its own key, as WeChat prints it. */
function nestedEvent(vector: Record<string, unknown>): CustomSendInput {
  const msgType = vector['msgtype'] as string;
  const body: Record<string, unknown> = { msg_type: msgType, [msgType]: vector[msgType] };
  if (vector['customservice']) body['customservice'] = vector['customservice'];
  return { to: vector['touser'] as string, body };
}

function expectExactly(actual: unknown, vector: unknown): void {
  expect(actual).toEqual(vector);
  expect(JSON.stringify(actual)).toBe(JSON.stringify(vector));
}

describe('buildCustomSendBody against the official examples', () => {
  it('has an event body for every fixture file', () => {
    expect(fixtureFiles.length).toBeGreaterThanOrEqual(15);
    for (const name of fixtureFiles) expect(Object.keys({ ...FLAT_EVENTS, ...TYPING })).toContain(name);
  });

  it.each(fixtureFiles)('%s: the flat event body gives exactly the example', (name) => {
    const vector = loadFixture(name);
    const typing = TYPING[name];
    const actual = typing ? buildTypingBody(...typing) : buildCustomSendBody(FLAT_EVENTS[name]!);
    expectExactly(actual, vector);
  });

  it.each(fixtureFiles.filter((name) => !TYPING[name]))('%s: the nested event body gives exactly the example', (name) => {
    const vector = loadFixture(name);
    expectExactly(buildCustomSendBody(nestedEvent(vector)), vector);
  });
});

describe('buildCustomSendBody mapping rules', () => {
  it('defaults to text and ignores fields of other types', () => {
    expect(buildCustomSendBody({ to: 'o1', body: { content: 'hi', media_id: 'M', title: 'x' } })).toEqual({
      touser: 'o1',
      msgtype: 'text',
      text: { content: 'hi' },
    });
  });

  it('takes msg_type from the body when msgType is not given, and msgType wins when both are', () => {
    expect(buildCustomSendBody({ to: 'o1', body: { msg_type: 'image', media_id: 'M' } })['msgtype']).toBe('image');
    expect(buildCustomSendBody({ to: 'o1', msgType: 'voice', body: { msg_type: 'image', media_id: 'M' } })['msgtype']).toBe(
      'voice',
    );
  });

  it('uses the nested object alone when present (the forms never mix)', () => {
    const built = buildCustomSendBody({ to: 'o1', body: { msg_type: 'video', media_id: 'FLAT', video: { media_id: 'NESTED' } } });
    expect(built['video']).toEqual({ media_id: 'NESTED' });
  });

  it('drops unknown fields and keeps WeChat field order', () => {
    const built = buildCustomSendBody({
      to: 'o1',
      body: { msg_type: 'image', image: { extra: 'x', media_id: 'M' } },
    });
    expect(JSON.stringify(built)).toBe('{"touser":"o1","msgtype":"image","image":{"media_id":"M"}}');
  });

  it('accepts news articles as an array in the flat form', () => {
    const built = buildCustomSendBody({ to: 'o1', body: { msg_type: 'news', articles: [{ title: 'T', url: 'U' }] } });
    expect(built['news']).toEqual({ articles: [{ title: 'T', url: 'U' }] });
  });

  it('puts kf_account from the nested customservice object', () => {
    const built = buildCustomSendBody({ to: 'o1', body: { content: 'x', customservice: { kf_account: 'a@b' } } });
    expect(built['customservice']).toEqual({ kf_account: 'a@b' });
  });

  it('keeps every value a string, never coercing', () => {
    expect(() => buildCustomSendBody({ to: 'o1', body: { msg_type: 'wxcard', card_id: 123 } })).toThrow(
      /body\.card_id must be a string/,
    );
  });
});

describe('buildCustomSendBody validation', () => {
  const invalid = (input: CustomSendInput): InvalidInputError => {
    try {
      buildCustomSendBody(input);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).status).toBe(400);
      return error as InvalidInputError;
    }
    throw new Error('expected an InvalidInputError');
  };

  it.each([
    ['text', {}, 'content'],
    ['text', { content: '' }, 'content'],
    ['image', {}, 'media_id'],
    ['voice', { content: 'x' }, 'media_id'],
    ['video', { title: 'T' }, 'media_id'],
    ['music', { musicurl: 'u', hqmusicurl: 'h' }, 'thumb_media_id'],
    ['music', { thumb_media_id: 't', hqmusicurl: 'h' }, 'musicurl'],
    ['mpnews', {}, 'media_id'],
    ['mpnewsarticle', {}, 'article_id'],
    ['wxcard', {}, 'card_id'],
    ['miniprogrampage', { appid: 'a', thumb_media_id: 't' }, 'pagepath'],
    ['miniprogrampage', { pagepath: 'p', thumb_media_id: 't' }, 'appid'],
    ['news', { url: 'U' }, 'title'],
    ['msgmenu', { head_content: 'h' }, 'list'],
  ])('msg_type %s with %j names the missing %s', (msgType, fields, missing) => {
    const error = invalid({ to: 'o1', body: { msg_type: msgType, ...fields } });
    expect(error.message).toContain(missing);
    expect(error.message).toContain(msgType);
  });

  it('names the missing field inside the nested form', () => {
    expect(invalid({ to: 'o1', body: { msg_type: 'image', image: {} } }).message).toContain('body.image.media_id');
    expect(invalid({ to: 'o1', body: { msg_type: 'msgmenu', msgmenu: { list: [{ id: '1' }] } } }).message).toContain(
      'body.msgmenu.list[0].content',
    );
  });

  it('refuses an unknown msg_type, a missing recipient, more than one news article and a non-object type field', () => {
    expect(invalid({ to: 'o1', body: { msg_type: 'sticker' } }).message).toMatch(/unsupported msg_type "sticker"/);
    expect(invalid({ to: '', body: { content: 'x' } }).message).toMatch(/openid/);
    expect(
      invalid({ to: 'o1', body: { msg_type: 'news', articles: [{ title: 'a' }, { title: 'b' }] } }).message,
    ).toMatch(/exactly one article/);
    expect(invalid({ to: 'o1', body: { msg_type: 'image', image: 'M' } }).message).toMatch(/body\.image must be an object/);
  });
});

describe('buildTypingBody', () => {
  it('refuses other commands and a missing recipient', () => {
    expect(() => buildTypingBody('o1', 'typing' as 'Typing')).toThrow(InvalidInputError);
    expect(() => buildTypingBody('', 'Typing')).toThrow(InvalidInputError);
  });
});
