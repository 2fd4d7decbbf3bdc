import { splitEventBody, toInboundEventBody, toInboundEventBodies, VONAGE_BODY_LIMIT_BYTES } from '../../../../src/bridge/to-vonage/event-body';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readWeChatMessage, weChatContentDigest } from '../../../../src/wechat/message';

/** Samples written from WeChat's documentation (test/fixtures/messages/documented/index.json names each page). */
const documented = (file: string) => readFileSync(path.join(__dirname, '../../../fixtures/messages/documented', file), 'utf8');

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
    const m = readWeChatMessage(xml('<MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_42</EventKey><Ticket>T</Ticket>'));
    expect(body).toMatchObject({ msg_type: 'event', event: 'subscribe', event_key: 'qrscene_42', ticket: 'T', msg_id: `evt:oUser:1700000000:subscribe:${weChatContentDigest(m)}` });
    expect(body.content).toBe('[followed the account via QR code 42]');
  });

  test.each([
    ['qrscene_42', '[followed the account via QR code 42]'],
    ['last_trade_no_4200000001202312011234567890', '[followed the account after payment 4200000001202312011234567890]'],
    ['scanbarcode|EAN13|6901234567892', '[followed the account after scanning a barcode EAN13|6901234567892]'],
    ['scanimage|https://example.com/p.jpg', '[followed the account after scanning an image https://example.com/p.jpg]'],
    ['some_other_key', '[followed the account, event key some_other_key]'],
    ['', '[followed the account]'],
  ])('a follow with EventKey %j is rendered by what the key is', (eventKey, content) => {
    const body = toInboundEventBody(readWeChatMessage(xml(`<MsgType>event</MsgType><Event>subscribe</Event><EventKey><![CDATA[${eventKey}]]></EventKey>`)));
    expect(body.content).toBe(content);
  });

  test('a device_event keeps its Event, so bind and unbind can be told apart', () => {
    const device = (name: string) =>
      toInboundEventBody(
        readWeChatMessage(
          xml(`<MsgType>device_event</MsgType><Event>${name}</Event><DeviceType>gh_1</DeviceType><DeviceID>dev1</DeviceID><Content></Content><SessionID>0</SessionID><MsgID>5</MsgID><OpenID>oUser</OpenID>`),
        ),
      );
    expect(device('bind')).toMatchObject({ msg_type: 'device_event', event: 'bind', device_id: 'dev1', msg_id: '5' });
    expect(device('unbind')).toMatchObject({ msg_type: 'device_event', event: 'unbind' });
  });
});

describe('nested WeChat elements pass through as nested JSON', () => {
  const body = (file: string) => JSON.parse(JSON.stringify(toInboundEventBody(readWeChatMessage(documented(file))))) as Record<string, unknown>;

  test('subscribe_msg_popup_event: every List, in order', () => {
    expect(body('event-subscribe_msg_popup_event.xml')).toMatchObject({
      event: 'subscribe_msg_popup_event',
      subscribe_msg_popup_event: {
        list: [
          { template_id: 'VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc', subscribe_status_string: 'accept', popup_scene: '2' },
          { template_id: '9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI', subscribe_status_string: 'reject', popup_scene: '2' },
        ],
      },
    });
  });

  test('subscribe_msg_change_event and subscribe_msg_sent_event: a single List is an object', () => {
    expect(body('event-subscribe_msg_change_event.xml')['subscribe_msg_change_event']).toEqual({
      list: { template_id: 'VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc', subscribe_status_string: 'reject' },
    });
    expect(body('event-subscribe_msg_sent_event.xml')['subscribe_msg_sent_event']).toEqual({
      list: { template_id: 'VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc', msg_id: '1700827132819554304', error_code: '0', error_status: 'success' },
    });
  });

  test('MASSSENDJOBFINISH: the copyright results and the article URLs, beside the flat counts', () => {
    const b = body('event-MASSSENDJOBFINISH.xml');
    expect(b).toMatchObject({ msg_id: '1000001625', status: 'err(30003)', total_count: '0', copyright_check_state: '2' });
    const copyright = b['copyright_check_result'] as { count: string; check_state: string; result_list: { item: Record<string, string>[] } };
    expect(copyright.count).toBe('2');
    expect(copyright.check_state).toBe('2');
    expect(copyright.result_list.item.map((i) => [i['article_idx'], i['original_article_url']])).toEqual([['1', 'Url_1'], ['2', 'Url_2']]);
    expect(b['article_url_result']).toEqual({ count: '1', result_list: { item: { article_idx: '1', article_url: 'Url' } } });
  });

  test('ShakearoundUserShake: the chosen beacon and every beacon around', () => {
    const b = body('event-ShakearoundUserShake.xml');
    expect(b['chosen_beacon']).toEqual({ uuid: 'uuid', major: 'major', minor: 'minor', distance: '0.057' });
    expect(b['around_beacons']).toEqual({
      around_beacon: [
        { uuid: 'uuid', major: 'major', minor: 'minor', distance: '166.816' },
        { uuid: 'uuid', major: 'major', minor: 'minor', distance: '15.013' },
      ],
    });
  });

  test('every leaf is a string; hostile tag names never become keys', () => {
    const b = toInboundEventBody(
      readWeChatMessage(xml('<MsgType>event</MsgType><Event>x</Event><Block><Constructor>1</Constructor><__proto__>2</__proto__><Prototype>3</Prototype><Ok>4</Ok></Block>')),
    );
    const block = b['block'] as Record<string, unknown>;
    expect(Object.getPrototypeOf(block)).toBeNull();
    expect(Object.keys(block)).toEqual(['ok']);
    const leaves: unknown[] = [];
    const walk = (v: unknown): void => (v !== null && typeof v === 'object' ? Object.values(v).forEach(walk) : void leaves.push(v));
    walk(body('event-MASSSENDJOBFINISH.xml'));
    expect(leaves.filter((leaf) => typeof leaf !== 'string' && typeof leaf !== 'number')).toEqual([]);
  });

  test('a body too big for one custom event is split with the nested elements kept as JSON text', () => {
    const items = Array.from({ length: 60 }, (_, i) => `<List><TemplateId>${'T'.repeat(40)}${i}</TemplateId><SubscribeStatusString>accept</SubscribeStatusString></List>`).join('');
    const parts = toInboundEventBodies(readWeChatMessage(xml(`<MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent>${items}</SubscribeMsgPopupEvent>`)));
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(VONAGE_BODY_LIMIT_BYTES);
    const content = parts.map((p) => p.content as string).join('');
    const json = content.slice(content.indexOf('subscribe_msg_popup_event: ') + 'subscribe_msg_popup_event: '.length);
    expect((JSON.parse(json) as { list: unknown[] }).list).toHaveLength(60);
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
    expect(parts.map((p) => p.content as string).join('')).toBe(text);
  });

  test('an oversized non-text field is moved into the content stream, not dropped', () => {
    const description = 'd'.repeat(10_000);
    const parts = splitEventBody({ direction: 'inbound', content: '[link] T', msg_type: 'link', msg_id: '1', title: 'T', description });
    for (const part of parts) expect(bytes(part)).toBeLessThanOrEqual(VONAGE_BODY_LIMIT_BYTES);
    expect(parts[0]!.title).toBe('T');
    expect(parts.map((p) => p.content as string).join('')).toBe(`[link] T\ndescription: ${description}`);
  });

  test('toInboundEventBodies splits a long WeChat text', () => {
    const bodies = toInboundEventBodies(readWeChatMessage(xml(`<MsgType>text</MsgType><Content>${'x'.repeat(10_000)}</Content><MsgId>5</MsgId>`)));
    expect(bodies.length).toBe(3);
  });
});
