import { splitEventBody, toInboundEventBody, toInboundEventBodies, VONAGE_BODY_LIMIT_BYTES } from '../../../src/bridge/inbound';
import { readWeChatMessage } from '../../../src/wechat/message';

const xml = (inner: string) =>
  `<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1700000000</CreateTime>${inner}</xml>`;
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v), 'utf8');

describe('toInboundEventBody', () => {
  test('a text message carries the contract fields', () => {
    const body = toInboundEventBody(readWeChatMessage(xml('<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content><MsgId>6054768590064713728</MsgId>')));
    expect(body).toEqual({ direction: 'inbound', account: 'default', from: 'oUser', to: 'gh_1', content: '你好', msg_type: 'text', msg_id: '6054768590064713728', create_time: 1700000000 });
  });

  test('the body names the configured account beside the original id, and no WeChat tag can pose as it', () => {
    const message = readWeChatMessage(xml('<MsgType>text</MsgType><Content>hi</Content><Account>forged</Account><MsgId>1</MsgId>'));
    expect(toInboundEventBody(message, { accountId: 'sales' })).toMatchObject({ account: 'sales', to: 'gh_1' });
    expect(toInboundEventBody(message)).toMatchObject({ account: 'default' });
  });

  test('an event without MsgId uses its dedup key as msg_id and renders readable content', () => {
    const body = toInboundEventBody(readWeChatMessage(xml('<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_42</EventKey><Ticket>T</Ticket>')));
    expect(body).toMatchObject({ msg_type: 'event', event: 'subscribe', event_key: 'qrscene_42', ticket: 'T', msg_id: 'evt:oUser:1700000000:subscribe:qrscene_42' });
    expect(body.content).toBe('[followed the account via QR code 42]');
  });

  test.each([
    ['<MsgType>image</MsgType><PicUrl>http://p</PicUrl><MediaId>m</MediaId><MsgId>1</MsgId>', '[image]'],
    ['<MsgType>location</MsgType><Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale><Label>广州</Label><MsgId>1</MsgId>', '[location] 广州 (23.1, 113.3)'],
    ['<MsgType>link</MsgType><Title>T</Title><Description>D</Description><Url>http://u</Url><MsgId>1</MsgId>', '[link] T http://u'],
    ['<MsgType>event</MsgType><Event>CLICK</Event><EventKey>K</EventKey>', '[menu click K]'],
    ['<MsgType>brandnew</MsgType><Foo>bar</Foo>', '[brandnew]'],
  ])('content for %s', (inner, content) => {
    expect(toInboundEventBody(readWeChatMessage(xml(inner))).content).toBe(content);
  });
});

describe('splitEventBody', () => {
  test('a body within the limit is left alone', () => {
    const body = { direction: 'inbound', content: 'short', msg_id: '1' };
    expect(splitEventBody(body)).toEqual([body]);
  });

  test.each([
    ['ASCII', 'a'.repeat(20_000)],
    ['CJK (3 bytes each)', '微'.repeat(9_000)],
    ['emoji (surrogate pairs)', '😀'.repeat(5_000)],
    ['control characters (6-byte JSON escapes)', '\u0002'.repeat(5_000)],
    ['quotes and backslashes', '"\\'.repeat(5_000)],
  ])('%s text is split into ordered parts within 4096 bytes, and rejoins exactly', (_name, text) => {
    const parts = splitEventBody({ direction: 'inbound', from: 'o', to: 'gh', content: text, msg_type: 'text', msg_id: '9', create_time: 1 });
    expect(parts.length).toBeGreaterThan(1);
    parts.forEach((part, i) => {
      expect(bytes(part)).toBeLessThanOrEqual(VONAGE_BODY_LIMIT_BYTES);
      expect(part).toMatchObject({ part: i + 1, parts: parts.length, msg_id: '9', from: 'o' });
    });
    expect(parts.map((p) => p.content).join('')).toBe(text);
  });

  test('an oversized non-text field is moved into the content stream, not dropped', () => {
    const description = 'd'.repeat(10_000);
    const parts = splitEventBody({ direction: 'inbound', content: '[link] T', msg_type: 'link', msg_id: '1', title: 'T', description });
    for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(VONAGE_BODY_LIMIT_BYTES);
    expect(parts[0]!.title).toBe('T');
    expect(parts.map((p) => p.content).join('')).toBe(`[link] T\ndescription: ${description}`);
  });

  test('toInboundEventBodies splits a long WeChat text', () => {
    const bodies = toInboundEventBodies(readWeChatMessage(xml(`<MsgType>text</MsgType><Content>${'x'.repeat(10_000)}</Content><MsgId>5</MsgId>`)));
    expect(bodies.length).toBe(3);
  });
});
