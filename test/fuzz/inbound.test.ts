/**
 * Fuzzing the message model and its translation into `custom:wechat:message` bodies: for any
 * message WeChat can send (built as XML and read back, the way the webhook reads it), every body
 * serialises within Vonage's 4096 bytes, nothing is lost in the split, and every part names the message.
 */
import fc from 'fast-check';
import {
  renderContent,
  toInboundEventBodies,
  toInboundEventBody,
  VONAGE_BODY_LIMIT_BYTES,
  type InboundEventBody,
} from '../../src/bridge/to-vonage/event-body';
import { InvalidInputError } from '../../src/errors';
import {
  MAX_WECHAT_ID_LENGTH,
  readWeChatMessage,
  weChatContentDigest,
  WECHAT_EVENT_FIELDS,
  WECHAT_MESSAGE_FIELDS,
  type WeChatMessage,
} from '../../src/wechat/message';
import { buildWeChatXml, type XmlBuildFields } from '../../src/wechat/xml';
import { anyText, mustThrow, RUNS } from './support';

const serialisedBytes = (body: InboundEventBody): number => Buffer.byteLength(JSON.stringify(body), 'utf8');

/** Every tag the field tables read (top level, nested paths as nested elements), plus tags nobody names. */
const KNOWN_TAGS = [
  'Content', 'MsgDataId', 'Idx', 'bizmsgmenuid', 'PicUrl', 'MediaId', 'Format', 'Recognition', 'MediaId16K',
  'ThumbMediaId', 'Location_X', 'Location_Y', 'Scale', 'Label', 'Title', 'Description', 'Url', 'AppId', 'PagePath',
  'ThumbUrl', 'EventKey', 'Ticket', 'MenuId', 'Latitude', 'Longitude', 'Precision', 'Status', 'TotalCount',
  'FilterCount', 'SentCount', 'ErrorCount', 'KfAccount', 'FromKfAccount', 'ToKfAccount',
  // Names that collide with the body's own keys once snake_cased.
  'Direction', 'From', 'To', 'Part', 'Parts', 'Msg_Type', 'CreateTime_', 'Event_',
];

/** Text up to a few thousand characters: long enough to need splitting, in every script and escape class. */
const fieldText = fc.oneof(
  { weight: 12, arbitrary: anyText(40) },
  // Long text from a short random one repeated: as varied where it matters (escapes, surrogates, the
  // cut points between parts) and far cheaper to generate than thousands of random characters.
  { weight: 1, arbitrary: fc.tuple(anyText(40), fc.integer({ min: 1, max: 200 })).map(([text, n]) => text.repeat(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', '字', '😀', '\u0002', '"', '\\', '\n'), fc.integer({ min: 0, max: 6000 })).map(([c, n]) => c.repeat(n)) },
);

/** An id: realistic, arbitrary, or as long and as expensive to serialise as the message model allows. */
const id = (realistic: string) =>
  nonEmpty(fc.oneof(
    { weight: 3, arbitrary: fc.constant(realistic) },
    { weight: 3, arbitrary: anyText(64) },
    { weight: 1, arbitrary: fc.constantFrom('\u0001', '"', '字', '\udc00').map((c) => c.repeat(MAX_WECHAT_ID_LENGTH)) },
  ));

const nonEmpty = (arbitrary: fc.Arbitrary<string>) => arbitrary.filter((s) => s !== '');

/** A WeChat message or event as XML fields: the four common ones, maybe MsgId/Event, and extra fields. */
const weChatFields: fc.Arbitrary<XmlBuildFields> = fc
  .record({
    ToUserName: id('gh_97417a04a28d'),
    FromUserName: id('oUser-abcdefghijklmnopqrstuv'),
    CreateTime: fc.oneof(fc.constant('1700000000'), fc.stringMatching(/^\d{1,15}$/)),
    MsgType: fc.oneof(fc.constantFrom(...Object.keys(WECHAT_MESSAGE_FIELDS), 'event', 'event', 'unknowntype'), id('text')),
    MsgId: fc.option(fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), id('1')), { nil: undefined }),
    Event: fc.option(fc.oneof(fc.constantFrom(...Object.keys(WECHAT_EVENT_FIELDS), 'SCAN', 'LOCATION', 'CLICK', 'VIEW'), id('subscribe')), { nil: undefined }),
    extra: fc.dictionary(fc.oneof(fc.constantFrom(...KNOWN_TAGS), fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,12}$/)), fieldText, { maxKeys: 8 }),
    scanCode: fc.option(fc.record({ ScanType: fieldText, ScanResult: fieldText }), { nil: undefined }),
  })
  .map(({ extra, scanCode, ...common }) => ({
    ...extra,
    ...common, // the common fields win over an extra of the same name
    ...(scanCode ? { ScanCodeInfo: scanCode } : {}),
  }));

const weChatMessage: fc.Arbitrary<WeChatMessage> = weChatFields.map((fields) => readWeChatMessage(buildWeChatXml(fields)));

/** Keys of the body itself; a WeChat field of the same name is not carried (documented in event-body.ts). */
const RESERVED_KEYS = ['direction', 'from', 'to', 'content', 'msg_type', 'msg_id', 'create_time', 'event', 'part', 'parts'];

/** Text messages, and types or events the bridge does not know: their Content is what the user wrote. */
const isTextLike = (message: WeChatMessage): boolean =>
  message.msgType === 'text' ||
  (message.msgType !== 'event' && !Object.hasOwn(WECHAT_MESSAGE_FIELDS, message.msgType.toLowerCase())) ||
  (message.msgType === 'event' && (message.event === undefined || !Object.hasOwn(WECHAT_EVENT_FIELDS, message.event.toLowerCase())));

/** The properties every message's bodies have; one pass per message keeps the suite fast. Returns the part count. */
function expectFaithfulBodies(message: WeChatMessage): number {
  const whole = toInboundEventBody(message);
  const bodies = toInboundEventBodies(message);
  expect(bodies.length).toBeGreaterThanOrEqual(1);

  bodies.forEach((body, index) => {
    // Within Vonage's limit.
    expect(serialisedBytes(body)).toBeLessThanOrEqual(VONAGE_BODY_LIMIT_BYTES);
    // Names the message, and counts itself when split.
    expect(body.direction).toBe('inbound');
    expect(body.from).toBe(message.fromUserName);
    expect(body.to).toBe(message.toUserName);
    expect(body.msg_type).toBe(message.msgType);
    expect(typeof body.msg_id).toBe('string');
    expect(body.msg_id).not.toBe('');
    expect(body.msg_id).toBe(whole.msg_id);
    expect(body.create_time).toBe(whole.create_time);
    if (bodies.length > 1) {
      expect(body.part).toBe(index + 1);
      expect(body.parts).toBe(bodies.length);
    } else {
      expect(body.part).toBeUndefined();
    }
  });

  // Every field of the message reaches the body: under its own name, or (its text) in the content.
  for (const [key, value] of Object.entries(message.fields)) {
    if (key === 'content') {
      if (isTextLike(message)) expect(whole.content as string).toContain(value);
    } else if (!RESERVED_KEYS.includes(key)) {
      expect({ key, value: whole[key] }).toEqual({ key, value });
    }
  }

  if (bodies.length === 1) {
    expect(bodies[0]).toStrictEqual(whole);
    return 1;
  }
  // Split: the content rejoins, and every other field is in every part or appended to the content.
  const content = bodies.map((body) => body.content as string).join('');
  expect(content.startsWith(renderContent(message))).toBe(true);
  expect(content.startsWith(whole.content as string)).toBe(true);
  for (const [key, value] of Object.entries(whole)) {
    if (key === 'content') continue;
    const inEveryPart = bodies.every((body) => body[key] === value);
    const inContent = content.includes(`\n${key}: ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`);
    expect({ key, kept: inEveryPart || inContent }).toEqual({ key, kept: true });
  }
  return bodies.length;
}

describe('toInboundEventBodies for any WeChat message', () => {
  it('every body within 4096 bytes, naming the message; the parts rejoin to the whole', () => {
    let split = 0;
    fc.assert(
      fc.property(weChatMessage, (message) => {
        if (expectFaithfulBodies(message) > 1) split += 1;
      }),
      { numRuns: RUNS.medium },
    );
    // The generator reaches the splitting path often enough for the property to mean something.
    expect(split).toBeGreaterThan(RUNS.medium / 20);
  });

  it('ids longer than the model allows are refused with InvalidInputError(400), nothing else', () => {
    const tooLong = fc.string({ unit: 'binary', minLength: MAX_WECHAT_ID_LENGTH + 1, maxLength: 400 });
    fc.assert(
      fc.property(weChatFields, fc.constantFrom('ToUserName', 'FromUserName', 'MsgType', 'Event', 'MsgId'), tooLong, (fields, tag, value) => {
        const xml = buildWeChatXml({ ...fields, ...(tag === 'Event' ? { MsgType: 'event' } : {}), [tag]: value });
        expect(mustThrow(InvalidInputError, () => readWeChatMessage(xml)).status).toBe(400);
      }),
      { numRuns: RUNS.expensive },
    );
  });
});

describe('regressions found by fuzzing', () => {
  const base = { ToUserName: 'gh_97417a04a28d', FromUserName: 'oUser', CreateTime: '1700000000' };

  it('a long EventKey no longer makes msg_id (repeated in every part) overflow the body', () => {
    // Was: msg_id = the dedup key with 1500 backslashes in it, and parts of 4097 bytes.
    const message = readWeChatMessage(
      buildWeChatXml({ ...base, MsgType: 'event', Event: 'VIEW', EventKey: '\\'.repeat(1500) }),
    );
    const bodies = toInboundEventBodies(message);
    expect(bodies[0]!.msg_id).toMatch(/^evt:oUser:1700000000:VIEW:[0-9a-f]{64}$/); // the key no longer embeds the EventKey
    expect(toInboundEventBodies(message)[0]!.msg_id).toBe(bodies[0]!.msg_id); // stable across retries
    expectFaithfulBodies(message);
  });

  it('a short event key keeps the readable dedup key as msg_id', () => {
    const message = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'event', Event: 'CLICK', EventKey: 'MENU_1' }));
    expect(toInboundEventBody(message).msg_id).toBe(`evt:oUser:1700000000:CLICK:${weChatContentDigest(message)}`);
  });

  it('a <Part> or <Parts> field neither poses as a part counter nor is overwritten by one', () => {
    // Was: `part: "x"` in a single body, and a long message's field silently replaced by the counter.
    const short = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'text', Content: 'hi', MsgId: '1', Part: 'x', Parts: 'y' }));
    expect(toInboundEventBodies(short)).toEqual([expect.not.objectContaining({ part: expect.anything() })]);
    const long = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'text', Content: '字'.repeat(5000), MsgId: '2', Part: 'x' }));
    const parts = toInboundEventBodies(long);
    expect(parts.map((body) => body.part)).toEqual(parts.map((_, index) => index + 1));
    expectFaithfulBodies(long);
  });

  it("an unknown message type or event keeps its Content in the body's content", () => {
    // Was: content "[markdown]" and the user's text dropped, though unknown types pass through whole.
    const unknownType = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'markdown', Content: '**hi**', MsgId: '3' }));
    expect(toInboundEventBody(unknownType).content).toBe('[markdown] **hi**');
    const unknownEvent = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'event', Event: 'new_thing', Content: 'said this' }));
    expect(toInboundEventBody(unknownEvent).content).toBe('[event new_thing] said this');
    const image = readWeChatMessage(buildWeChatXml({ ...base, MsgType: 'image', PicUrl: 'http://p', MediaId: 'm', MsgId: '4' }));
    expect(toInboundEventBody(image).content).toBe('[image]');
  });

  it('the longest ids the model accepts, all escaped, still leave room for content', () => {
    const worst = '\u0001'.repeat(MAX_WECHAT_ID_LENGTH);
    const message = readWeChatMessage(
      buildWeChatXml({ ToUserName: worst, FromUserName: worst, CreateTime: '999999999999999', MsgType: 'event', Event: worst, MsgId: worst, EventKey: worst, Content: 'x'.repeat(9000) }),
    );
    expectFaithfulBodies(message);
  });
});
