/**
 * The outbound path end to end: RTC events posted to the real bridge's /rtcEvent → a fake WeChat
 * API (stable_token, custom/send, custom/typing) → `custom:wechat:status` events at a fake Vonage.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { RecordedEvent } from '../support/fake-vonage';
import { startHarness, TEST_APP_SECRET, TEST_CONVERSATION_ID, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { outboundMessage, postRtcEvent, rtcEvent } from '../support/rtc-events';
import { pushToBridge } from '../support/wechat-push';
import { sleep } from '../support/wait';

const customSendDir = path.join(__dirname, '../fixtures/custom-send');
const vector = (file: string) => JSON.parse(readFileSync(path.join(customSendDir, file), 'utf8')) as Record<string, unknown>;
const SEND_PATH = '/cgi-bin/message/custom/send';
const TYPING_PATH = '/cgi-bin/message/custom/typing';

const statusEvents = (harness: Harness): RecordedEvent[] => harness.vonage.events.filter((e) => e.type === 'custom:wechat:status');

async function waitForStatus(harness: Harness, refEventId: unknown, timeoutMs = 5_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = statusEvents(harness).find((e) => e.body.ref_event_id === String(refEventId));
    if (found) {
      expect(found.conversationId).toBe(TEST_CONVERSATION_ID);
      return found.body;
    }
    if (Date.now() > deadline) throw new Error(`no status event for ${String(refEventId)} within ${timeoutMs} ms`);
    await sleep(10);
  }
}

async function waitForStatusCount(harness: Harness, n: number, timeoutMs = 10_000): Promise<RecordedEvent[]> {
  const deadline = Date.now() + timeoutMs;
  while (statusEvents(harness).length < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} status events, got ${statusEvents(harness).length}`);
    await sleep(10);
  }
  return statusEvents(harness);
}


/** An outbound event body in the nested form: WeChat's own type object under its msgtype. */
function eventBodyFor(v: Record<string, unknown>): Record<string, unknown> {
  const msgType = v.msgtype as string;
  const body: Record<string, unknown> = { direction: 'outbound', to: v.touser, msg_type: msgType, [msgType]: v[msgType] };
  if (v.customservice !== undefined) body.customservice = v.customservice;
  return body;
}

describe('every customer-service vector reaches WeChat byte for byte', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  const files = readdirSync(customSendDir).filter((f) => f.endsWith('.json') && f !== 'index.json');
  const messageFiles = files.filter((f) => !f.startsWith('typing'));
  const typingFiles = files.filter((f) => f.startsWith('typing'));

  test('the fixtures hold the message and typing vectors', () => {
    expect(messageFiles.length).toBeGreaterThanOrEqual(13);
    expect(typingFiles.sort()).toEqual(['typing-cancel.json', 'typing.json']);
  });

  test.each(messageFiles)('%s', async (file) => {
    const v = vector(file);
    const before = harness.weChat.sent.length;
    const event = rtcEvent('custom:wechat:message', eventBodyFor(v));
    expect(await postRtcEvent(harness.baseUrl, event)).toEqual({ status: 200, text: 'ok' });
    const sent = (await harness.weChat.waitForSends(before + 1))[before]!;
    expect(sent.path).toBe(SEND_PATH);
    expect(sent.rawBody).toBe(JSON.stringify(v));
    // The bridge never saw OPENID write: its window is unknown to it (closed), whatever WeChat allows.
    expect(await waitForStatus(harness, event.id)).toEqual({
      status: 'delivered',
      ref_event_id: String(event.id),
      to: 'OPENID',
      reply_window: { closes_at: 0, replies_left: 0 },
    });
  });

  test('the contract\'s flat text form ({to, content}) gives the text vector', async () => {
    const before = harness.weChat.sent.length;
    const event = outboundMessage('OPENID', { content: 'Hello World' });
    await postRtcEvent(harness.baseUrl, event);
    const sent = (await harness.weChat.waitForSends(before + 1))[before]!;
    expect(sent.rawBody).toBe(JSON.stringify(vector('text.json')));
    expect(await waitForStatus(harness, event.id)).toMatchObject({ status: 'delivered' });
  });

  test.each(typingFiles)('%s through custom:wechat:typing', async (file) => {
    const v = vector(file);
    const before = harness.weChat.sent.length;
    const statusesBefore = statusEvents(harness).length;
    const event = rtcEvent('custom:wechat:typing', { to: v.touser, command: v.command });
    expect(await postRtcEvent(harness.baseUrl, event)).toEqual({ status: 200, text: 'ok' });
    const sent = (await harness.weChat.waitForSends(before + 1))[before]!;
    expect(sent.path).toBe(TYPING_PATH);
    expect(sent.rawBody).toBe(JSON.stringify(v));
    // Typing is best effort: no status event.
    await sleep(100);
    expect(statusEvents(harness).length).toBe(statusesBefore);
  });
});

describe('sending', () => {
  let harness: Harness;
  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(() => harness.close());

  test('100 concurrent outbound events for different users: all delivered, one token fetch', async () => {
    const events = Array.from({ length: 100 }, (_, i) => outboundMessage(`oUser${i}`, { content: `reply ${i}` }));
    const answers = await Promise.all(events.map((e) => postRtcEvent(harness.baseUrl, e)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const sent = await harness.weChat.waitForSends(100, 10_000);
    expect(sent.map((s) => (s.json as { touser: string }).touser).sort()).toEqual(events.map((e) => (e.body as { to: string }).to).sort());
    const statuses = await waitForStatusCount(harness, 100);
    expect(statuses.every((s) => s.body.status === 'delivered')).toBe(true);
    expect(new Set(statuses.map((s) => s.body.ref_event_id)).size).toBe(100);
    expect(harness.weChat.tokenFetches).toBe(1);
  });

  test('one user\'s messages reach WeChat in the order Vonage sent them', async () => {
    const events = Array.from({ length: 20 }, (_, i) => outboundMessage('oOrdered', { content: `m${i}` }));
    for (const event of events) await postRtcEvent(harness.baseUrl, event);
    const sent = await harness.weChat.waitForSends(20);
    expect(sent.map((s) => (s.json as { text: { content: string } }).text.content)).toEqual(events.map((_, i) => `m${i}`));
  });

  test('an injected 40001 causes one token refetch and one retry, then delivery', async () => {
    harness.weChat.inject(SEND_PATH, [{ errcode: 40001 }]);
    const event = outboundMessage('oUser1', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    expect(await waitForStatus(harness, event.id)).toMatchObject({ status: 'delivered' });
    expect(harness.weChat.tokenFetches).toBe(2);
    expect(harness.weChat.requests.filter((r) => r.path === SEND_PATH)).toHaveLength(2);
    expect(harness.weChat.sent).toHaveLength(1);
  });

  test('a token refused again after the refetch (another system fetching tokens): failed with the errcode and the likely cause', async () => {
    harness.weChat.inject(SEND_PATH, [{ errcode: 40001 }, { errcode: 40001 }]);
    const logsBefore = harness.logs.length;
    const event = outboundMessage('oConflict', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await waitForStatus(harness, event.id);
    expect(status).toMatchObject({ status: 'failed', error_code: '40001' });
    expect(status.error_message).toMatch(/another system is fetching tokens for this AppID/);
    const errorLines = harness.logs.slice(logsBefore).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 50);
    expect(errorLines.map((l) => l.msg)).toEqual([expect.stringMatching(/another system/)]);
    const metrics = await (await fetch(`${harness.baseUrl}/metrics`)).text();
    expect(metrics).toContain('wechat_bridge_wechat_token_conflicts_total 1');
    await sleep(150);
    expect(harness.weChat.requests.filter((r) => r.path === SEND_PATH && r.rawBody.includes('oConflict'))).toHaveLength(2);
  });

  test('45015 gives a failed status with WeChat\'s code and message, and no retry', async () => {
    harness.weChat.inject(SEND_PATH, [{ errcode: 45015 }]);
    const event = outboundMessage('oGone', { content: 'are you there?' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await waitForStatus(harness, event.id);
    expect(status).toMatchObject({ status: 'failed', ref_event_id: String(event.id), to: 'oGone', error_code: '45015' });
    expect(status.error_message).toMatch(/response out of time limit/);
    expect(status.error_message).toMatch(/48-hour window/);
    await sleep(150);
    expect(harness.weChat.requests).toHaveLength(1);
    expect(harness.weChat.sent).toHaveLength(0);
  });

  test.each([45047, 43004, 40003, 48001])('errcode %d fails at once with its code', async (errcode) => {
    harness.weChat.inject(SEND_PATH, [{ errcode }]);
    const event = outboundMessage('oSomeone', { content: 'hi' });
    await postRtcEvent(harness.baseUrl, event);
    expect(await waitForStatus(harness, event.id)).toMatchObject({ status: 'failed', error_code: String(errcode) });
    await sleep(100);
    expect(harness.weChat.requests).toHaveLength(1);
  });

  test('errcode -1 (system busy) is retried with backoff, then delivered once', async () => {
    harness.weChat.inject(SEND_PATH, [{ errcode: -1 }]);
    const event = outboundMessage('oBusy', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    expect(await waitForStatus(harness, event.id, 10_000)).toEqual({
      status: 'delivered',
      ref_event_id: String(event.id),
      to: 'oBusy',
      reply_window: { closes_at: 0, replies_left: 0 },
    });
    expect(harness.weChat.requests).toHaveLength(2);
    expect(harness.weChat.sent).toHaveLength(1);
  });

  test('HTTP 503 is retried too', async () => {
    harness.weChat.inject(SEND_PATH, [{ status: 503 }]);
    const event = outboundMessage('oBusy', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    expect(await waitForStatus(harness, event.id, 10_000)).toMatchObject({ status: 'delivered' });
    expect(harness.weChat.requests).toHaveLength(2);
  });

  test('a send WeChat may have accepted (connection lost after sending) is not repeated: failed, delivery uncertain', async () => {
    harness.weChat.inject(SEND_PATH, [{ reset: true }]);
    const event = outboundMessage('oMaybe', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await waitForStatus(harness, event.id);
    expect(status).toMatchObject({ status: 'failed', error_code: 'uncertain' });
    expect(status.error_message).toMatch(/delivery uncertain/);
    await sleep(150);
    expect(harness.weChat.requests).toHaveLength(1);
  });

  test('an outbound event without `to` fails with a status saying `to` is missing', async () => {
    const event = outboundMessage(undefined, { content: 'to whom?' });
    expect((await postRtcEvent(harness.baseUrl, event)).status).toBe(200);
    const status = await waitForStatus(harness, event.id);
    expect(status).toMatchObject({ status: 'failed', to: '', error_code: 'missing_to' });
    expect(status.error_message).toMatch(/`to` is missing/);
    expect(harness.weChat.requests).toHaveLength(0);
  });

  test('an event that cannot become a WeChat message fails with the reason, without calling WeChat', async () => {
    const unknownType = outboundMessage('oUser', { msg_type: 'hologram' });
    const noMedia = outboundMessage('oUser', { msg_type: 'image' });
    await postRtcEvent(harness.baseUrl, unknownType);
    await postRtcEvent(harness.baseUrl, noMedia);
    expect(await waitForStatus(harness, unknownType.id)).toMatchObject({ status: 'failed', error_code: 'invalid_event' });
    expect((await waitForStatus(harness, noMedia.id)).error_message).toMatch(/media_id/);
    expect(harness.weChat.requests).toHaveLength(0);
  });

  test('events the bridge does not act on are answered 200 and send nothing', async () => {
    const ignored = [
      // The bridge's own inbound event, echoed back by Vonage.
      rtcEvent('custom:wechat:message', { direction: 'inbound', from: 'oUser', to: 'gh_account', content: 'hi', msg_type: 'text' }),
      rtcEvent('custom:wechat:message', { to: 'oUser', content: 'no direction' }),
      rtcEvent('custom:wechat:status', { status: 'delivered', ref_event_id: '5', to: 'oUser' }),
      rtcEvent('custom:wechat:typing', { direction: 'inbound', to: 'oUser', command: 'Typing' }),
      rtcEvent('custom:something:else', { to: 'oUser', content: 'x', direction: 'outbound' }),
      rtcEvent('member:joined', { user: { id: 'USR-1', name: 'agent' }, channel: { type: 'app' } }),
      rtcEvent('member:left', {}),
      rtcEvent('message', { message_type: 'text', text: 'hello' }),
      rtcEvent('rtc:status', { status: 'answered' }),
      rtcEvent('audio:play:done', {}),
      rtcEvent('conversation:updated', {}),
      rtcEvent('app:knocking', {}),
      { type: 'member:invited', id: 7, cid: TEST_CONVERSATION_ID, timestamp: new Date().toISOString() },
    ];
    for (const event of ignored) expect(await postRtcEvent(harness.baseUrl, event)).toEqual({ status: 200, text: 'ok' });
    // A real outbound event behind them, as a barrier: once it is sent, the ignored ones had their chance.
    await postRtcEvent(harness.baseUrl, outboundMessage('oUser', { content: 'the only one' }));
    await harness.weChat.waitForSends(1);
    await sleep(200);
    expect(harness.weChat.requests).toHaveLength(1);
    expect(await harness.bridge.store.stats()).toMatchObject({ deadLetters: 0 });
  });

  test('the same RTC event posted twice (or concurrently) is sent once', async () => {
    const event = outboundMessage('oUser', { content: 'once' });
    expect((await postRtcEvent(harness.baseUrl, event)).status).toBe(200);
    expect((await postRtcEvent(harness.baseUrl, event)).status).toBe(200);
    const other = outboundMessage('oUser', { content: 'also once' });
    const answers = await Promise.all([1, 2, 3].map(() => postRtcEvent(harness.baseUrl, other)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await harness.weChat.waitForSends(2);
    await waitForStatusCount(harness, 2);
    await sleep(200);
    expect(harness.weChat.sent.map((s) => (s.json as { text: { content: string } }).text.content)).toEqual(['once', 'also once']);
    expect(statusEvents(harness)).toHaveLength(2);
  });

  test.each([
    ['malformed JSON', '{"type": "custom:wechat:message", '],
    ['an empty body', ''],
    ['an array', '[]'],
    ['a string', '"custom:wechat:message"'],
    ['a number', '42'],
    ['null', 'null'],
    ['no id', JSON.stringify({ type: 'custom:wechat:message', conversation_id: TEST_CONVERSATION_ID, body: { direction: 'outbound', to: 'o', content: 'x' } })],
    ['no type', JSON.stringify({ id: 5, conversation_id: TEST_CONVERSATION_ID, body: {} })],
    ['no conversation id', JSON.stringify({ type: 'custom:wechat:message', id: 5, body: { direction: 'outbound', to: 'o', content: 'x' } })],
    ['a custom event without a body object', JSON.stringify({ type: 'custom:wechat:message', id: 5, conversation_id: TEST_CONVERSATION_ID, body: 'hi' })],
  ])('%s is answered 400', async (_name, raw) => {
    const answer = await postRtcEvent(harness.baseUrl, raw);
    expect(answer.status).toBe(400);
    expect(answer.text.length).toBeLessThan(200);
  });

  test('a body over 256 KiB is answered 413', async () => {
    const answer = await postRtcEvent(harness.baseUrl, outboundMessage('oUser', { content: 'x'.repeat(300 * 1024) }));
    expect(answer.status).toBe(413);
  });

  test('typing failures are logged, never retried, and post no status', async () => {
    harness.weChat.inject(TYPING_PATH, [{ errcode: -1 }]);
    await postRtcEvent(harness.baseUrl, rtcEvent('custom:wechat:typing', { to: 'oUser', command: 'Typing' }));
    await postRtcEvent(harness.baseUrl, rtcEvent('custom:wechat:typing', { to: 'oUser', command: 'Dance' }));
    const message = outboundMessage('oUser', { content: 'after typing' });
    await postRtcEvent(harness.baseUrl, message);
    await waitForStatus(harness, message.id);
    await sleep(100);
    expect(harness.weChat.requests.map((r) => r.path)).toEqual([TYPING_PATH, SEND_PATH]);
    expect(statusEvents(harness)).toHaveLength(1);
    expect(harness.logs.join('')).toMatch(/typing indicator not shown/);
  });

  test('neither the app secret nor any access token reaches the logs', async () => {
    harness.weChat.inject(SEND_PATH, [{ errcode: 40001 }]);
    await postRtcEvent(harness.baseUrl, outboundMessage('oUser', { content: 'hello' }));
    await harness.weChat.waitForSends(1);
    await waitForStatusCount(harness, 1);
    const logs = harness.logs.join('');
    expect(logs).not.toContain(TEST_APP_SECRET);
    for (const token of harness.weChat.issuedTokens) expect(logs).not.toContain(token);
  });
});

describe('the full loop through the real server', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  test('WeChat message in → Vonage event → agent reply → WeChat send → delivered status at Vonage', async () => {
    // 1. A user writes to the official account.
    const xml = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
    expect(await pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
    const [inbound] = await harness.vonage.waitForEvents(1);
    expect(inbound).toMatchObject({ type: 'custom:wechat:message', body: { direction: 'inbound', from: 'fromUser' } });

    // 2. Vonage dispatches that event back to the application: ignored.
    const echo = rtcEvent(inbound!.type, inbound!.body, { id: inbound!.id });
    expect(await postRtcEvent(harness.baseUrl, echo)).toEqual({ status: 200, text: 'ok' });

    // 3. An agent replies to the user the event came from.
    const reply = outboundMessage(inbound!.body.from as string, { content: '您好，请问有什么可以帮您？' }, { id: inbound!.id + 1 });
    expect(await postRtcEvent(harness.baseUrl, reply)).toEqual({ status: 200, text: 'ok' });

    // 4. WeChat receives the customer-service message…
    const [sent] = await harness.weChat.waitForSends(1);
    expect(sent!.rawBody).toBe('{"touser":"fromUser","msgtype":"text","text":{"content":"您好，请问有什么可以帮您？"}}');

    // 5. …and the conversation hears that it was delivered.
    // The sample's CreateTime is of 2012: the window it opened closed 48 hours later.
    expect(await waitForStatus(harness, reply.id)).toEqual({
      status: 'delivered',
      ref_event_id: String(reply.id),
      to: 'fromUser',
      reply_window: { closes_at: 1348831860 + 48 * 3600, replies_left: 0 },
    });
    await sleep(100);
    expect(harness.weChat.requests).toHaveLength(1);
    expect(harness.vonage.events.map((e) => e.type)).toEqual(['custom:wechat:message', 'custom:wechat:status']);
  });
});
