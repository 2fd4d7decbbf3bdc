/**
 * Poison input on both webhooks and both stores: text that no database can hold as text (NUL,
 * unpaired UTF-16 surrogates) and JSON nested absurdly deep. It is the sender's fault, so the answer
 * is a short 4xx (WeChat and Vonage stop resending it), with a log line; never a 503, which would
 * make them resend it forever. The bridge keeps serving, and a normal message after it goes through.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startHarness, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { outboundMessage, postRtcEvent, rtcEvent } from '../support/rtc-events';
import { pushToBridge } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
let nextMsgId = 880_000;
let nextUser = 0;

/** A text message from `from` with `content`, in CDATA sections as WeChat writes them. */
const textXml = (from: string, content: string) =>
  TEXT.replace('fromUser', from).replace('this is a test', content).replace('1234567890123456', String((nextMsgId += 1)));
/** The same with `from` and `content` as plain element text, where character references are decoded. */
const plainTextXml = (from: string, content: string) =>
  textXml(from, content).replace(`<![CDATA[${from}]]>`, from).replace(`<![CDATA[${content}]]>`, content);

/** An outbound event whose body holds JSON nested `depth` deep (written as text: JSON.stringify would overflow first). */
const deepEvent = (depth: number) =>
  JSON.stringify(outboundMessage(`oDeep${nextUser++}`, { content: 'x', extra: 'HOLE' })).replace('"HOLE"', `${'{"a":'.repeat(depth)}"leaf"${'}'.repeat(depth)}`);

const WECHAT_CASES: Array<[string, () => string]> = [
  ['a NUL character in the openid', () => textXml(`oNul${nextUser++}\u0000x`, 'hello')],
  ['a NUL character in the content', () => textXml(`oNul${nextUser++}`, 'hel\u0000lo')],
  ['a NUL character reference in the content', () => plainTextXml(`oNul${nextUser++}`, 'hel&#0;lo')],
  ['a lone surrogate character reference in the openid', () => plainTextXml(`oLone${nextUser++}&#xD800;`, 'hello')],
  ['a lone surrogate character reference in the content', () => plainTextXml(`oLone${nextUser++}`, 'hel&#xDC00;lo')],
];

const RTC_CASES: Array<[string, () => string]> = [
  ['a NUL character in the recipient', () => JSON.stringify(outboundMessage(`oNul${nextUser++}\u0000`, { content: 'x' }))],
  ['a NUL character in the content', () => JSON.stringify(outboundMessage(`oNul${nextUser++}`, { content: 'a\u0000b' }))],
  ['a NUL character in a key', () => JSON.stringify(outboundMessage(`oNul${nextUser++}`, { content: 'x', 'k\u0000ey': 'v' }))],
  ['a lone surrogate in the content', () => JSON.stringify(outboundMessage(`oLone${nextUser++}`, { content: 'a\ud800b' }))],
  ['a lone surrogate in a key', () => JSON.stringify(outboundMessage(`oLone${nextUser++}`, { content: 'x', ['\udfffk']: 'v' }))],
  ['a lone surrogate in the conversation id', () => JSON.stringify(outboundMessage(`oLone${nextUser++}`, { content: 'x' }, { conversation_id: 'CON-\ud800' }))],
  ['a NUL character in an ignored event', () => JSON.stringify(rtcEvent('custom:other', { note: 'a\u0000b' }))],
  ['JSON nested 5,000 deep', () => deepEvent(5_000)],
  ['JSON nested 100,000 deep', () => deepEvent(100_000)],
];

describe.each([['SQLite'], ['PostgreSQL']])('poison input on %s', (storeName) => {
  let harness: Harness;
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    if (storeName === 'PostgreSQL') db = await createTestDatabase('bridge_poison');
    harness = await startHarness(db ? { databaseUrl: db.url } : {});
  });
  afterAll(async () => {
    await harness?.close();
    await db?.drop();
  });

  const expectShortRejection = (answer: { status: number; text: string }, logsBefore: number) => {
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.text.length).toBeLessThan(100);
    expect(harness.logs.slice(logsBefore).join('')).toContain(String(answer.status));
  };

  test.each(WECHAT_CASES)('/weChatEvent: %s is a 4xx', async (_name, xml) => {
    const logsBefore = harness.logs.length;
    expectShortRejection(await pushToBridge(harness.baseUrl, xml(), { token: TEST_TOKEN }), logsBefore);
  });

  test.each(RTC_CASES)('/rtcEvent: %s is a 4xx', async (_name, body) => {
    const logsBefore = harness.logs.length;
    expectShortRejection(await postRtcEvent(harness.baseUrl, body()), logsBefore);
  });

  test('the bridge still serves both webhooks, and nothing of the poison was sent', async () => {
    expect(await pushToBridge(harness.baseUrl, textXml('oAfterPoison', 'fine'), { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    expect(await postRtcEvent(harness.baseUrl, outboundMessage('oAfterPoison', { content: 'fine too' }))).toEqual({ status: 200, text: 'ok' });
    const events = await harness.vonage.waitForEvents(1);
    expect(events.map((e) => e.body.from)).toEqual(['oAfterPoison']);
    const sends = await harness.weChat.waitForSends(1);
    expect(sends.map((s) => (s.json as { touser: string }).touser)).toEqual(['oAfterPoison']);
  });
});
