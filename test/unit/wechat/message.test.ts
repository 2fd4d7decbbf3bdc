import { readFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidInputError } from '../../../src/errors';
import { decodeEncodingAesKey, decryptWeChatMessage } from '../../../src/wechat/crypto';
import {
  isWeChatEvent,
  parseWeChatMessage,
  readWeChatMessage,
  snakeCase,
  weChatContentDigest,
  weChatDedupKey,
  type WeChatMessage,
} from '../../../src/wechat/message';
import { parseWeChatXml, type XmlElement } from '../../../src/wechat/xml';

const FIXTURES = path.join(__dirname, '../../fixtures');
const official = (file: string) => readFileSync(path.join(FIXTURES, 'messages/official', file), 'utf8');

/** The model as plain data, for toEqual. */
const view = (m: WeChatMessage) => ({ ...m, fields: { ...m.fields }, nested: JSON.parse(JSON.stringify(m.nested)) as unknown });

/** A WeChat-shaped document around `body` (the common fields of the official event samples). */
const event = (name: string, body: string) =>
  `<xml><ToUserName><![CDATA[gh_e136c6e50636]]></ToUserName><FromUserName><![CDATA[oMgHVjngRipVsoxg6TuX3vz6glDg]]></FromUserName>` +
  `<CreateTime>1408090502</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${name}]]></Event>${body}</xml>`;
const EVENT_COMMON = {
  toUserName: 'gh_e136c6e50636',
  fromUserName: 'oMgHVjngRipVsoxg6TuX3vz6glDg',
  createTime: '1408090502',
  msgType: 'event',
  msgId: undefined,
};
const message = (msgType: string, body: string) =>
  `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[fromUser]]></FromUserName>` +
  `<CreateTime>1348831860</CreateTime><MsgType><![CDATA[${msgType}]]></MsgType>${body}<MsgId>1234567890123456</MsgId></xml>`;
const MESSAGE_COMMON = {
  toUserName: 'toUser',
  fromUserName: 'fromUser',
  createTime: '1348831860',
  msgId: '1234567890123456',
  event: undefined,
};

function rejection(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).status).toBe(400);
    return error as InvalidInputError;
  }
  throw new Error('expected an InvalidInputError');
}

describe('official samples', () => {
  const users = { toUserName: 'toUser', fromUserName: 'fromUser' };
  const eventUsers = { toUserName: 'toUser', fromUserName: 'FromUser', createTime: '123456789', msgType: 'event', msgId: undefined };
  test.each<[string, Omit<ReturnType<typeof view>, 'nested'>]>([
    ['text.xml', { ...users, createTime: '1348831860', msgType: 'text', msgId: '1234567890123456', event: undefined, fields: { content: 'this is a test' } }],
    ['image.xml', { ...users, createTime: '1348831860', msgType: 'image', msgId: '1234567890123456', event: undefined, fields: { pic_url: 'this is a url', media_id: 'media_id' } }],
    ['voice.xml', { ...users, createTime: '1357290913', msgType: 'voice', msgId: '1234567890123456', event: undefined, fields: { media_id: 'media_id', format: 'Format' } }],
    ['voice-recognition.xml', { ...users, createTime: '1357290913', msgType: 'voice', msgId: '1234567890123456', event: undefined, fields: { media_id: 'media_id', format: 'Format', recognition: '腾讯微信团队' } }],
    ['video.xml', { ...users, createTime: '1357290913', msgType: 'video', msgId: '1234567890123456', event: undefined, fields: { media_id: 'media_id', thumb_media_id: 'thumb_media_id' } }],
    ['shortvideo.xml', { ...users, createTime: '1357290913', msgType: 'shortvideo', msgId: '1234567890123456', event: undefined, fields: { media_id: 'media_id', thumb_media_id: 'thumb_media_id' } }],
    ['location.xml', { ...users, createTime: '1351776360', msgType: 'location', msgId: '1234567890123456', event: undefined, fields: { location_x: '23.134521', location_y: '113.358803', scale: '20', label: '位置信息' } }],
    ['link.xml', { ...users, createTime: '1351776360', msgType: 'link', msgId: '1234567890123456', event: undefined, fields: { title: '公众平台官网链接', description: '公众平台官网链接', url: 'url' } }],
    ['msgmenu-click-text.xml', { toUserName: 'gh_501e2e78f66a', fromUserName: 'oVePN2DjdQlahnlYcj2JSUj3Fd1o', createTime: '1772335596', msgType: 'text', msgId: '25373744922163388', event: undefined, fields: { content: '取消支付', biz_msg_menu_id: '0' } }],
    ['event-subscribe.xml', { ...eventUsers, event: 'subscribe', fields: {} }],
    ['event-unsubscribe.xml', { ...eventUsers, event: 'unsubscribe', fields: {} }],
    ['event-subscribe-qrscene.xml', { ...eventUsers, event: 'subscribe', fields: { event_key: 'qrscene_123123', ticket: 'TICKET' } }],
    ['event-SCAN.xml', { ...eventUsers, event: 'SCAN', fields: { event_key: 'SCENE_VALUE', ticket: 'TICKET' } }],
    ['event-LOCATION.xml', { ...eventUsers, fromUserName: 'fromUser', event: 'LOCATION', fields: { latitude: '23.137466', longitude: '113.352425', precision: '119.385040' } }],
    ['event-CLICK.xml', { ...eventUsers, event: 'CLICK', fields: { event_key: 'EVENTKEY' } }],
    ['event-VIEW.xml', { ...eventUsers, event: 'VIEW', fields: { event_key: 'www.qq.com' } }],
    ['event-TEMPLATESENDJOBFINISH.xml', { toUserName: 'touser', fromUserName: 'fromuser', createTime: '1395658920', msgType: 'event', msgId: '200163836', event: 'TEMPLATESENDJOBFINISH', fields: { status: 'success' } }],
  ])('%s', (file, expected) => {
    const parsed = readWeChatMessage(official(file));
    expect(view(parsed)).toEqual({ ...expected, nested: {} });
    expect(Object.getPrototypeOf(parsed.fields)).toBeNull();
    expect(Object.isFrozen(parsed.fields)).toBe(true);
  });

  test('safe-mode and compatible-mode bodies parse as XML with an Encrypt field', () => {
    const safe = parseWeChatXml(official('safe-mode-body.xml'));
    expect(safe['Encrypt']).toMatch(/^D7yzvUNAL930/);
    expect(safe['ToUserName']).toBe('gh_97417a04a28d');
    const compatible = parseWeChatXml(official('compatible-mode-body.xml'));
    expect(compatible['Encrypt']).toMatch(/^hyzAe4OzmOMbd6/);
  });

  test('a safe-mode body alone is not a WeChat message', () => {
    expect(rejection(() => readWeChatMessage(official('safe-mode-body.xml'))).message).toBe('not a WeChat message');
  });

  test('a compatible-mode body read directly does not carry its ciphertext into fields', () => {
    const m = readWeChatMessage(official('compatible-mode-body.xml'));
    expect(m.msgId).toBe('6054768590064713728');
    expect({ ...m.fields }).toEqual({ content: 'abcdteT' });
  });
});

describe('decrypted official vectors', () => {
  const vectors = (
    JSON.parse(readFileSync(path.join(FIXTURES, 'crypto-vectors.json'), 'utf8')) as {
      vectors: { id: string; kind: string; input: Record<string, string> }[];
    }
  ).vectors.filter((v) => v.kind === 'decrypt_message');
  const read = (id: string) => {
    const v = vectors.find((x) => x.id === id)!;
    const key = decodeEncodingAesKey(v.input['encoding_aes_key']!);
    return readWeChatMessage(decryptWeChatMessage(v.input['encrypt']!, key, v.input['receive_id']!));
  };

  test('keeps the 64-bit MsgId intact', () => {
    const m = read('tencent-mp-python-sample-decrypt');
    expect(m.msgId).toBe('6054768590064713728');
    expect(Number(m.msgId) > Number.MAX_SAFE_INTEGER).toBe(true);
    expect(weChatDedupKey(m)).toBe('msg:oyORnuP8q7ou2gfYjqLzSIWZf0rs:6054768590064713728');
  });

  test('passes an unknown event through with its fields', () => {
    const m = read('doc-3rdparty-debug_demo-decrypt');
    expect(view(m)).toEqual({
      toUserName: 'gh_97417a04a28d',
      fromUserName: 'o9AgO5Kd5ggOC-bXrbNODIiE3bGY',
      createTime: '1715943329',
      msgType: 'event',
      msgId: undefined,
      event: 'debug_demo',
      fields: { debug_str: 'hello world' },
      nested: {},
    });
    expect(weChatDedupKey(m)).toBe(`evt:o9AgO5Kd5ggOC-bXrbNODIiE3bGY:1715943329:debug_demo:${weChatContentDigest(m)}`);
  });

  test('carries extra top-level fields of known types under their snake_case names', () => {
    const m = read('tencent-wecom-sample-decrypt');
    expect(m.msgType).toBe('text');
    expect({ ...m.fields }).toEqual({ content: 'hello', agent_id: '218' });
  });
});

describe('message types', () => {
  test.each<[string, string, string, Record<string, string>]>([
    ['text from an article', 'text', '<Content><![CDATA[hi]]></Content><MsgDataId>xxxx</MsgDataId><Idx>1</Idx>', { content: 'hi', msg_data_id: 'xxxx', idx: '1' }],
    ['voice with a 16 kHz id', 'voice', '<MediaId>m</MediaId><Format>amr</Format><MediaId16K>m16</MediaId16K>', { media_id: 'm', format: 'amr', media_id_16k: 'm16' }],
    [
      'miniprogrampage',
      'miniprogrampage',
      '<AppId><![CDATA[wx123123123]]></AppId><Title><![CDATA[Title]]></Title><PagePath><![CDATA[pages/index]]></PagePath>' +
        '<ThumbUrl><![CDATA[http://thumb]]></ThumbUrl><ThumbMediaId><![CDATA[thumb_id]]></ThumbMediaId>',
      { app_id: 'wx123123123', title: 'Title', page_path: 'pages/index', thumb_url: 'http://thumb', thumb_media_id: 'thumb_id' },
    ],
    [
      'an unknown type, passed through generically',
      'file',
      '<Title><![CDATA[report.pdf]]></Title><FileKey>k</FileKey><FileMd5>5d</FileMd5><FileTotalLen>42</FileTotalLen><Nested><A>1</A></Nested>',
      { title: 'report.pdf', file_key: 'k', file_md5: '5d', file_total_len: '42' },
    ],
  ])('%s', (_name, msgType, body, fields) => {
    const m = readWeChatMessage(message(msgType, body));
    expect({ ...view(m), nested: undefined }).toEqual({ ...MESSAGE_COMMON, msgType, fields, nested: undefined });
    expect(weChatDedupKey(m)).toBe('msg:fromUser:1234567890123456');
  });

  test('a text message whose Content is "00123" keeps it a string', () => {
    expect(readWeChatMessage(message('text', '<Content><![CDATA[00123]]></Content>')).fields['content']).toBe('00123');
  });

  test('control characters in content are kept', () => {
    expect(readWeChatMessage(message('text', '<Content><![CDATA[a\x02b\x10c\x1d]]></Content>')).fields['content']).toBe(
      'a\x02b\x10c\x1d',
    );
  });

  test('values that are not plain strings are not fields; they are kept as nested values, never crash', () => {
    const m = readWeChatMessage(
      message('text', '<Content><b>bold</b></Content><PicUrl>a</PicUrl><PicUrl>b</PicUrl><Extra><x/></Extra><Empty/>'),
    );
    expect({ ...m.fields }).toEqual({ empty: '' });
    expect(JSON.parse(JSON.stringify(m.nested))).toEqual({ content: { b: 'bold' }, pic_url: ['a', 'b'], extra: { x: '' } });
  });

  test('an unknown type keeps its nested elements', () => {
    const m = readWeChatMessage(message('file', '<Title>t</Title><Nested><A>1</A><A>2</A><B><C>3</C></B></Nested>'));
    expect(JSON.parse(JSON.stringify(m.nested))).toEqual({ nested: { a: ['1', '2'], b: { c: '3' } } });
    expect(Object.getPrototypeOf(m.nested)).toBeNull();
    expect(Object.getPrototypeOf(m.nested['nested'])).toBeNull();
  });

  test('an Event tag outside msgType "event" is kept (device_event bind and unbind), but it is not an event', () => {
    const deviceEvent = (name: string) =>
      message(
        'device_event',
        `<Event><![CDATA[${name}]]></Event><DeviceType><![CDATA[gh_1]]></DeviceType><DeviceID><![CDATA[dev1]]></DeviceID>` +
          '<Content><![CDATA[]]></Content><SessionID>0</SessionID><OpenID><![CDATA[fromUser]]></OpenID>',
      );
    const bind = readWeChatMessage(deviceEvent('bind'));
    const unbind = readWeChatMessage(deviceEvent('unbind'));
    expect(bind.event).toBe('bind');
    expect(unbind.event).toBe('unbind');
    expect(isWeChatEvent(bind)).toBe(false);
    expect({ ...bind.fields }).toEqual({ device_type: 'gh_1', device_id: 'dev1', content: '', session_id: '0', open_id: 'fromUser' });
    const text = readWeChatMessage(message('text', '<Content>hi</Content><Event>CLICK</Event>'));
    expect(text.event).toBe('CLICK');
    expect({ ...text.fields }).toEqual({ content: 'hi' });
  });
});

describe('events', () => {
  test.each<[string, string, Record<string, string>]>([
    [
      'scancode_push',
      '<EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>',
      { event_key: '6', scan_type: 'qrcode', scan_result: '1' },
    ],
    [
      'scancode_waitmsg',
      '<EventKey><![CDATA[6]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType><ScanResult><![CDATA[2]]></ScanResult></ScanCodeInfo>',
      { event_key: '6', scan_type: 'qrcode', scan_result: '2' },
    ],
    [
      'pic_sysphoto',
      '<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>1</Count><PicList><item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>',
      { event_key: '6', pic_count: '1', pic_md5_sums: '1b5f7c23b5bf75682a53e7b6d163e185' },
    ],
    [
      'pic_photo_or_album',
      '<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[5a75aaca956d97be686719218f275c6b]]></PicMd5Sum></item>' +
        '<item><PicMd5Sum><![CDATA[1b5f7c23b5bf75682a53e7b6d163e185]]></PicMd5Sum></item></PicList></SendPicsInfo>',
      { event_key: '6', pic_count: '2', pic_md5_sums: '5a75aaca956d97be686719218f275c6b,1b5f7c23b5bf75682a53e7b6d163e185' },
    ],
    [
      'pic_weixin',
      '<EventKey><![CDATA[6]]></EventKey><SendPicsInfo><Count>0</Count><PicList></PicList></SendPicsInfo>',
      { event_key: '6', pic_count: '0', pic_md5_sums: '' },
    ],
    [
      'location_select',
      '<EventKey><![CDATA[6]]></EventKey><SendLocationInfo><Location_X><![CDATA[23]]></Location_X><Location_Y><![CDATA[113]]></Location_Y>' +
        '<Scale><![CDATA[15]]></Scale><Label><![CDATA[ 广州市海珠区客村艺苑路 106号]]></Label><Poiname><![CDATA[]]></Poiname></SendLocationInfo>',
      { event_key: '6', location_x: '23', location_y: '113', scale: '15', label: ' 广州市海珠区客村艺苑路 106号', poiname: '' },
    ],
    [
      'view_miniprogram',
      '<EventKey><![CDATA[pages/index/index]]></EventKey><MenuId>MENUID</MenuId>',
      { event_key: 'pages/index/index', menu_id: 'MENUID' },
    ],
    ['VIEW', '<EventKey><![CDATA[www.qq.com]]></EventKey><MenuId>MENUID</MenuId>', { event_key: 'www.qq.com', menu_id: 'MENUID' }],
    ['kf_create_session', '<KfAccount><![CDATA[test1@test]]></KfAccount>', { kf_account: 'test1@test' }],
    ['kf_close_session', '<KfAccount><![CDATA[test1@test]]></KfAccount>', { kf_account: 'test1@test' }],
    [
      'kf_switch_session',
      '<FromKfAccount><![CDATA[test1@test]]></FromKfAccount><ToKfAccount><![CDATA[test2@test]]></ToKfAccount>',
      { from_kf_account: 'test1@test', to_kf_account: 'test2@test' },
    ],
    ['unsubscribe', '<EventKey><![CDATA[]]></EventKey>', { event_key: '' }],
    [
      'some_future_event',
      '<EventKey>k</EventKey><NewField>v</NewField><Nested><A>1</A></Nested><SeveralTimes>1</SeveralTimes><SeveralTimes>2</SeveralTimes>',
      { event_key: 'k', new_field: 'v' },
    ],
  ])('%s', (name, body, fields) => {
    const m = readWeChatMessage(event(name, body));
    expect({ ...view(m), nested: undefined }).toEqual({ ...EVENT_COMMON, event: name, fields, nested: undefined });
    expect(isWeChatEvent(m)).toBe(true);
    expect(weChatDedupKey(m)).toMatch(new RegExp(`^evt:oMgHVjngRipVsoxg6TuX3vz6glDg:1408090502:${name}:[0-9a-f]{64}$`));
  });

  test('MASSSENDJOBFINISH: MsgID (capital D) is the msgId, counts are strings, nested results flattened', () => {
    const m = readWeChatMessage(
      event(
        'MASSSENDJOBFINISH',
        '<MsgID>1000001625</MsgID><Status><![CDATA[err(30003)]]></Status><TotalCount>0</TotalCount><FilterCount>0</FilterCount>' +
          '<SentCount>0</SentCount><ErrorCount>0</ErrorCount><CopyrightCheckResult><Count>2</Count><ResultList><item>' +
          '<ArticleIdx>1</ArticleIdx><UserDeclareState>0</UserDeclareState></item></ResultList><CheckState>2</CheckState>' +
          '</CopyrightCheckResult>',
      ),
    );
    expect({ ...view(m), nested: undefined }).toEqual({
      ...EVENT_COMMON,
      nested: undefined,
      msgId: '1000001625',
      event: 'MASSSENDJOBFINISH',
      fields: {
        status: 'err(30003)',
        total_count: '0',
        filter_count: '0',
        sent_count: '0',
        error_count: '0',
        copyright_check_state: '2',
      },
    });
    // The digest covers the MsgID, so two job-finish events in the same second stay two events.
    const other = readWeChatMessage(event('MASSSENDJOBFINISH', '<MsgID>1000001626</MsgID><Status><![CDATA[err(30003)]]></Status>'));
    expect(weChatDedupKey(m)).toMatch(/^evt:oMgHVjngRipVsoxg6TuX3vz6glDg:1408090502:MASSSENDJOBFINISH:[0-9a-f]{64}$/);
    expect(weChatDedupKey(other)).not.toBe(weChatDedupKey(m));
  });

  test('event tables are looked up case-insensitively; the event keeps the case WeChat sent', () => {
    const m = readWeChatMessage(event('scan', '<EventKey>1</EventKey><Ticket>t</Ticket>'));
    expect(m.event).toBe('scan');
    expect({ ...m.fields }).toEqual({ event_key: '1', ticket: 't' });
  });

  test('an event without an Event tag is still accepted', () => {
    const xml = '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>';
    const m = readWeChatMessage(xml);
    expect(m.event).toBeUndefined();
    expect(isWeChatEvent(m)).toBe(false);
    expect(weChatDedupKey(m)).toMatch(/^evt:b:1::[0-9a-f]{64}$/);
  });
});

describe('rejects what is not a WeChat message', () => {
  const common: Record<string, string> = {
    ToUserName: '<ToUserName>a</ToUserName>',
    FromUserName: '<FromUserName>b</FromUserName>',
    CreateTime: '<CreateTime>1</CreateTime>',
    MsgType: '<MsgType>text</MsgType>',
  };
  const without = (tag: string, replacement = '') =>
    `<xml>${Object.entries(common)
      .map(([name, xml]) => (name === tag ? replacement : xml))
      .join('')}</xml>`;

  test.each(Object.keys(common))('missing %s', (tag) => {
    expect(rejection(() => readWeChatMessage(without(tag))).message).toBe('not a WeChat message');
  });

  test.each(Object.keys(common))('%s empty, repeated or nested', (tag) => {
    rejection(() => readWeChatMessage(without(tag, `<${tag}></${tag}>`)));
    rejection(() => readWeChatMessage(without(tag, `<${tag}>x</${tag}><${tag}>y</${tag}>`)));
    rejection(() => readWeChatMessage(without(tag, `<${tag}><a>1</a></${tag}>`)));
  });

  test.each(['', 'abc', '1.5', '-1', ' 1', '1e9'])('CreateTime %j', (createTime) => {
    rejection(() => readWeChatMessage(without('CreateTime', `<CreateTime>${createTime}</CreateTime>`)));
  });

  test('XML that is not well-formed, or not <xml>', () => {
    rejection(() => readWeChatMessage('<xml><ToUserName>a</ToUserName>'));
    rejection(() => readWeChatMessage('{"ToUserName":"a"}'));
    rejection(() => readWeChatMessage('<root><ToUserName>a</ToUserName></root>'));
  });

  test('a DOCTYPE bomb', () => {
    rejection(() =>
      readWeChatMessage('<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>'),
    );
  });
});

describe('hostile tag names', () => {
  test('__proto__ / constructor / prototype never become fields or pollute Object.prototype', () => {
    const m = readWeChatMessage(
      message('text', '<Content>hi</Content><__proto__>x</__proto__><constructor>y</constructor><prototype>z</prototype>'),
    );
    expect({ ...m.fields }).toEqual({ content: 'hi' });
    expect(Object.keys(m.fields)).toEqual(['content']);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
    expect(Object.prototype.constructor).toBe(Object);
  });

  test('a caller-built root with a normal prototype and odd keys is handled too', () => {
    const root = {
      ToUserName: 'a',
      FromUserName: 'b',
      CreateTime: '1',
      MsgType: 'weird',
      constructor: 'c',
      ['__proto__']: 'p',
      toString: 't',
    } as unknown as XmlElement;
    Object.defineProperty(root, '__proto__', { value: 'p', enumerable: true });
    const m = parseWeChatMessage(root);
    expect(Object.keys(m.fields).sort()).toEqual(['proto', 'to_string']);
    expect(Object.getPrototypeOf(m.fields)).toBeNull();
  });
});

describe('long tag names from a hostile sender', () => {
  test('are snake_cased in linear time (a backtracking regex would hang here)', () => {
    const upper = 'A'.repeat(30_000);
    const m = readWeChatMessage(message('text', `<${upper}>x</${upper}><a${'_'.repeat(30_000)}b>y</a${'_'.repeat(30_000)}b>`));
    expect(m.fields[upper.toLowerCase()]).toBe('x');
    expect(m.fields['a_b']).toBe('y');
  });
});

describe('weChatDedupKey', () => {
  test('messages: sender and MsgId; events: sender, time, event and a digest of the whole content', () => {
    expect(weChatDedupKey(readWeChatMessage(official('text.xml')))).toBe('msg:fromUser:1234567890123456');
    const qr = readWeChatMessage(official('event-subscribe-qrscene.xml'));
    expect(weChatDedupKey(qr)).toBe(`evt:FromUser:123456789:subscribe:${weChatContentDigest(qr)}`);
    expect(weChatContentDigest(qr)).toMatch(/^[0-9a-f]{64}$/);
    const plain = readWeChatMessage(official('event-subscribe.xml'));
    expect(weChatDedupKey(plain)).not.toBe(weChatDedupKey(qr));
  });

  test('a message without MsgId falls back to the event format', () => {
    const xml = '<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>7</CreateTime><MsgType>text</MsgType></xml>';
    expect(weChatDedupKey(readWeChatMessage(xml))).toMatch(/^evt:b:7::[0-9a-f]{64}$/);
  });

  // Two different events of one user in one second, differing only in a field other than EventKey.
  test.each([
    [
      'subscribe_msg_sent_event',
      '<SubscribeMsgSentEvent><List><TemplateId><![CDATA[T1]]></TemplateId><MsgID><![CDATA[1700827132819554304]]></MsgID><ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>',
      '<SubscribeMsgSentEvent><List><TemplateId><![CDATA[T1]]></TemplateId><MsgID><![CDATA[1700827132819554305]]></MsgID><ErrorCode>0</ErrorCode><ErrorStatus><![CDATA[success]]></ErrorStatus></List></SubscribeMsgSentEvent>',
    ],
    [
      'subscribe_msg_popup_event',
      '<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[T1]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent>',
      '<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[T2]]></TemplateId><SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent>',
    ],
    [
      'kf_switch_session',
      '<FromKfAccount><![CDATA[a@test]]></FromKfAccount><ToKfAccount><![CDATA[b@test]]></ToKfAccount>',
      '<FromKfAccount><![CDATA[a@test]]></FromKfAccount><ToKfAccount><![CDATA[c@test]]></ToKfAccount>',
    ],
  ])('%s: two different events in one second get two keys; a retry gets the same one', (name, first, second) => {
    const a = readWeChatMessage(event(name, first));
    const b = readWeChatMessage(event(name, second));
    expect(weChatDedupKey(a)).not.toBe(weChatDedupKey(b));
    expect(weChatDedupKey(readWeChatMessage(event(name, first)))).toBe(weChatDedupKey(a));
  });

  test('the layout of the XML (whitespace between tags, CDATA or not, tag order) does not change the key', () => {
    const a = readWeChatMessage(event('CLICK', '<EventKey><![CDATA[K]]></EventKey><MenuId>1</MenuId>'));
    const b = readWeChatMessage(event('CLICK', '\n  <MenuId><![CDATA[1]]></MenuId>\n  <EventKey>K</EventKey>\n'));
    expect(weChatDedupKey(b)).toBe(weChatDedupKey(a));
  });

  test('the same message from two users gives two keys', () => {
    const a = readWeChatMessage(official('text.xml'));
    const b = readWeChatMessage(official('text.xml').replace('fromUser', 'otherUser'));
    expect(weChatDedupKey(a)).not.toBe(weChatDedupKey(b));
  });
});

describe('snakeCase', () => {
  test.each([
    ['PicUrl', 'pic_url'],
    ['MediaId', 'media_id'],
    ['ThumbMediaId', 'thumb_media_id'],
    ['Location_X', 'location_x'],
    ['EventKey', 'event_key'],
    ['MsgDataId', 'msg_data_id'],
    ['KfAccount', 'kf_account'],
    ['AgentID', 'agent_id'],
    ['HQMusicUrl', 'hq_music_url'],
    ['debug_str', 'debug_str'],
    ['bizmsgmenuid', 'bizmsgmenuid'],
    ['Poiname', 'poiname'],
  ])('%s → %s', (tag, field) => {
    expect(snakeCase(tag)).toBe(field);
  });
});
