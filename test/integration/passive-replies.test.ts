/**
 * Passive-reply mode end to end: the WeChat platform emulator pushes to the real bridge exactly as
 * WeChat does (5 s per delivery, three deliveries) and reads the answer as WeChat would; an agent
 * (the test) reads the inbound event at the fake Vonage and posts its reply to /rtcEvent.
 */
import path from 'node:path';
import type { RepliesConfig } from '../../src/config';
import { userActionXml } from '../../src/sandbox/wechat/messages';
import type { PushResult } from '../../src/sandbox/wechat/dispatch';
import {
  startHarness,
  TEST_AES_KEY_TEXT,
  TEST_APP_ID,
  TEST_APP_SECRET,
  TEST_TOKEN,
  TEST_VONAGE_APP_ID,
  type Harness,
  type HarnessOptions,
} from '../support/bridge-harness';
import { startFakeWeChat, type FakeWeChat } from '../support/fake-wechat';
import { startFakeVonage, type FakeVonage, type RecordedEvent } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { outboundMessage, postRtcEvent, rtcEvent } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';

const HOLDING_TEXT = '回复 1 获取答复';
const passiveMode = (overrides: Partial<RepliesConfig> = {}): RepliesConfig => ({
  mode: 'passive',
  holdingText: HOLDING_TEXT,
  replyTtlMs: 60_000,
  ...overrides,
});

let nextMsgId = 8_100_000_000_000_000_000n;
let nextUser = 1;
const newOpenid = () => `oPassiveUser${String(nextUser++).padStart(4, '0')}`;

function textPush(weChat: FakeWeChat, openid: string, content: string): Promise<PushResult> {
  nextMsgId += 1n;
  const xml = userActionXml(
    { kind: 'text', content },
    { toUserName: weChat.accountId, fromUserName: openid, createTime: Math.floor(Date.now() / 1000), msgId: nextMsgId.toString() },
  );
  return weChat.pushXml(xml);
}

const inboundFrom = (harness: Harness, openid: string): RecordedEvent[] =>
  harness.vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === openid);

const statusOf = (harness: Harness, eventId: unknown): Record<string, unknown> | undefined =>
  harness.vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(eventId))?.body;

/** The agent answers `content` once the user's `n`th inbound event is at Vonage, after `delayMs`. */
async function agentReplies(harness: Harness, openid: string, content: string, options: { n?: number; delayMs?: number; baseUrl?: string } = {}) {
  await waitFor('the inbound event at Vonage', () => inboundFrom(harness, openid).length >= (options.n ?? 1), 10_000);
  if (options.delayMs) await sleep(options.delayMs);
  const event = outboundMessage(openid, { content });
  const posted = await postRtcEvent(options.baseUrl ?? harness.baseUrl, event);
  expect(posted.status).toBe(200);
  return event;
}

async function startPassiveBridge(options: HarnessOptions & { replies: RepliesConfig }): Promise<{ harness: Harness; weChat: FakeWeChat }> {
  const weChat = options.weChat ?? (await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET }));
  const harness = await startHarness({ ...options, weChat });
  weChat.connect({ url: `${harness.baseUrl}/weChatEvent`, token: TEST_TOKEN, encodingAesKey: TEST_AES_KEY_TEXT });
  return { harness, weChat };
}

describe('WECHAT_REPLY_MODE=passive', () => {
  let harness: Harness;
  let weChat: FakeWeChat;
  beforeAll(async () => {
    ({ harness, weChat } = await startPassiveBridge({ replies: passiveMode() }));
  });
  afterAll(async () => {
    await harness.close();
    await weChat.close();
  });

  it('answers the push itself with a reply that comes within the hold, and reports it delivered via passive', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'hi bot');
    const event = await agentReplies(harness, openid, 'hello from the bot');
    const result = await pushed;
    expect(result.replyError).toBeUndefined();
    expect(result.deliveries).toHaveLength(1);
    expect(result.reply).toMatchObject({ msgType: 'text', text: 'hello from the bot' });
    const status = await waitFor('the status', () => statusOf(harness, event.id));
    expect(status).toMatchObject({ status: 'delivered', via: 'passive', to: openid });
    expect(weChat.requests.filter((r) => r.path.endsWith('/custom/send'))).toHaveLength(0);
    expect(inboundFrom(harness, openid)).toHaveLength(1);
  });

  it('lets WeChat redeliver while no reply has come, answers the redelivery, and posts one event', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'a slow question');
    // Past the first delivery's 5 s: WeChat's second delivery is the one answered.
    const event = await agentReplies(harness, openid, 'a slow answer', { delayMs: 5_500 });
    const result = await pushed;
    expect(result.deliveries.map((d) => d.status ?? d.error)).toEqual(['no answer within 5000 ms', 200]);
    expect(result.reply?.text).toBe('a slow answer');
    expect(inboundFrom(harness, openid)).toHaveLength(1);
    expect(await waitFor('the status', () => statusOf(harness, event.id))).toMatchObject({ status: 'delivered', via: 'passive' });
  }, 20_000);

  it('answers the last delivery with the holding text and keeps the reply for the next message', async () => {
    const openid = newOpenid();
    const first = await textPush(weChat, openid, 'a very slow question');
    expect(first.deliveries).toHaveLength(3);
    expect(first.reply).toMatchObject({ msgType: 'text', text: HOLDING_TEXT });
    expect(inboundFrom(harness, openid)).toHaveLength(1);

    const event = await agentReplies(harness, openid, 'the answer, at last');
    await sleep(300);
    expect(statusOf(harness, event.id)).toBeUndefined();

    const next = await textPush(weChat, openid, '1');
    expect(next.deliveries).toHaveLength(1);
    expect(next.reply?.text).toBe('the answer, at last');
    expect(await waitFor('the status', () => statusOf(harness, event.id))).toMatchObject({ status: 'delivered', via: 'passive' });
  }, 30_000);

  it('answers one reply per push: a second reply waits for the next message', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'two answers please');
    await waitFor('the inbound event', () => inboundFrom(harness, openid).length === 1);
    const one = outboundMessage(openid, { content: 'one' });
    const two = outboundMessage(openid, { content: 'two' });
    await postRtcEvent(harness.baseUrl, one);
    await postRtcEvent(harness.baseUrl, two);
    expect((await pushed).reply?.text).toBe('one');
    expect((await textPush(weChat, openid, 'and?')).reply?.text).toBe('two');
    await waitFor('both statuses', () => statusOf(harness, one.id) && statusOf(harness, two.id));
  });

  it('answers with images and news in the passive reply format', async () => {
    const openid = newOpenid();
    const media = weChat.storeMedia({ type: 'image', bytes: Buffer.from('png'), contentType: 'image/png' });
    const pushed = textPush(weChat, openid, 'picture?');
    await waitFor('the inbound event', () => inboundFrom(harness, openid).length === 1);
    await postRtcEvent(harness.baseUrl, outboundMessage(openid, { msg_type: 'image', media_id: media.mediaId }));
    expect((await pushed).reply).toMatchObject({ msgType: 'image', mediaId: media.mediaId });

    const news = textPush(weChat, openid, 'news?');
    await waitFor('the inbound event', () => inboundFrom(harness, openid).length === 2);
    await postRtcEvent(harness.baseUrl, outboundMessage(openid, { msg_type: 'news', title: 'Headline', url: 'https://example.com/a' }));
    expect((await news).reply).toMatchObject({ msgType: 'news', text: '[news] Headline' });
  });

  it('answers success at once to a push that cannot take a reply (unsubscribe), even with a reply waiting', async () => {
    const openid = newOpenid();
    const queued = outboundMessage(openid, { content: 'for a later message' });
    await postRtcEvent(harness.baseUrl, queued);
    await waitFor('the reply queued', () => harness.logs.some((line) => line.includes(String(queued.id)) && line.includes('reply queued')));
    const xml = userActionXml({ kind: 'unfollow' }, { toUserName: weChat.accountId, fromUserName: openid, createTime: Math.floor(Date.now() / 1000) });
    const result = await weChat.pushXml(xml);
    expect(result.deliveries.map((d) => d.body)).toEqual(['success']);
    expect((await textPush(weChat, openid, 'back again')).reply?.text).toBe('for a later message');
  });

  it('sends no typing indicator: there is no customer-service API to show it with', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'typing?');
    await waitFor('the inbound event', () => inboundFrom(harness, openid).length === 1);
    await postRtcEvent(harness.baseUrl, rtcEvent('custom:wechat:typing', { to: openid, command: 'Typing' }));
    const reply = outboundMessage(openid, { content: 'typed' });
    await postRtcEvent(harness.baseUrl, reply);
    expect((await pushed).reply?.text).toBe('typed');
    await waitFor('the log line', () => harness.logs.some((line) => line.includes('typing indicator not sent')));
    expect(weChat.requests.filter((r) => r.path.endsWith('/custom/typing'))).toHaveLength(0);
  });

  it('fails at once an event that cannot be a passive reply, without holding it', async () => {
    const event = outboundMessage(newOpenid(), { msg_type: 'mpnews', media_id: 'm1' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await waitFor('the status', () => statusOf(harness, event.id));
    expect(status).toMatchObject({ status: 'failed', error_code: 'invalid_event' });
    expect(String(status.error_message)).toMatch(/cannot be a passive reply/);
  });
});

describe('passive replies in safe mode', () => {
  let harness: Harness;
  let weChat: FakeWeChat;
  beforeAll(async () => {
    ({ harness, weChat } = await startPassiveBridge({ replies: passiveMode() }));
    weChat.setPushMode('safe');
  });
  afterAll(async () => {
    await harness.close();
    await weChat.close();
  });

  it('answers an encrypted push with an encrypted, signed reply that WeChat reads', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, '加密的问题');
    await agentReplies(harness, openid, '加密的回答');
    const result = await pushed;
    expect(result.replyError).toBeUndefined();
    expect(result.deliveries[0]!.body).toContain('<Encrypt>');
    expect(result.deliveries[0]!.body).not.toContain('加密的回答');
    expect(result.reply?.text).toBe('加密的回答');
  });
});

describe('queued replies that no push answers', () => {
  let harness: Harness;
  let weChat: FakeWeChat;
  beforeAll(async () => {
    ({ harness, weChat } = await startPassiveBridge({ replies: passiveMode({ replyTtlMs: 1_000 }) }));
  });
  afterAll(async () => {
    await harness.close();
    await weChat.close();
  });

  it('fail expired after the configured time, and are not sent afterwards', async () => {
    const openid = newOpenid();
    const event = outboundMessage(openid, { content: 'nobody asked' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await waitFor('the expired status', () => statusOf(harness, event.id), 10_000);
    expect(status).toMatchObject({ status: 'failed', error_code: 'expired', to: openid });
    // The next push finds nothing to answer: the last delivery gets the holding text, not the expired reply.
    const next = await textPush(weChat, openid, 'hello?');
    expect(next.reply?.text).toBe(HOLDING_TEXT);
    expect(harness.vonage.events.filter((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(event.id))).toHaveLength(1);
  }, 30_000);
});

describe('WECHAT_REPLY_MODE=auto on an unverified subscription account', () => {
  let harness: Harness;
  let weChat: FakeWeChat;
  beforeAll(async () => {
    ({ harness, weChat } = await startPassiveBridge({ replies: { ...passiveMode(), mode: 'auto', holdingText: undefined } }));
    weChat.setAccountType('unverified-subscription');
  });
  afterAll(async () => {
    await harness.close();
    await weChat.close();
  });

  it('switches the user to passive replies after custom/send answers 48001, without failing the reply', async () => {
    const openid = newOpenid();
    // Not passive yet: answered `success` at once, as in customer-service mode.
    const first = await textPush(weChat, openid, 'hello');
    expect(first.deliveries).toHaveLength(1);
    expect(first.deliveries[0]!.body).toBe('success');

    const event = await agentReplies(harness, openid, 'queued after 48001');
    await waitFor('the refused custom/send', () => weChat.requests.some((r) => r.path.endsWith('/custom/send')));
    await sleep(300);
    expect(statusOf(harness, event.id)).toBeUndefined();

    const second = await textPush(weChat, openid, 'still there?');
    expect(second.reply?.text).toBe('queued after 48001');
    expect(await waitFor('the status', () => statusOf(harness, event.id))).toMatchObject({ status: 'delivered', via: 'passive' });
    // The next reply goes straight to the mailbox: no second custom/send.
    const pushed = textPush(weChat, openid, 'again');
    await agentReplies(harness, openid, 'straight to passive', { n: 3 });
    expect((await pushed).reply?.text).toBe('straight to passive');
    expect(weChat.requests.filter((r) => r.path.endsWith('/custom/send'))).toHaveLength(1);
  }, 20_000);
});

describe('passive replies across two instances on one PostgreSQL database', () => {
  let db: TestDatabase;
  let weChat: FakeWeChat;
  let a: Harness;
  let b: Harness;
  beforeAll(async () => {
    db = await createTestDatabase('bridge_passive');
    weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    ({ harness: a } = await startPassiveBridge({ replies: passiveMode(), weChat, databaseUrl: db.url }));
    b = await startHarness({ replies: passiveMode(), weChat, vonage: a.vonage, databaseUrl: db.url });
    // WeChat pushes to instance A.
    weChat.connect({ url: `${a.baseUrl}/weChatEvent`, token: TEST_TOKEN, encodingAesKey: TEST_AES_KEY_TEXT });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    await weChat?.close();
    await db?.drop();
  });

  it('answers a push held by one instance with a reply that reached the other', async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'which instance?');
    await agentReplies(a, openid, 'from instance B', { baseUrl: b.baseUrl });
    const result = await pushed;
    expect(result.deliveries).toHaveLength(1);
    expect(result.reply?.text).toBe('from instance B');
  });
});

describe('a queued reply and a restart', () => {
  let weChat: FakeWeChat;
  let vonage: FakeVonage;
  beforeAll(async () => {
    weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  });
  afterAll(async () => {
    await weChat.close();
    await vonage.close();
  });

  it('keeps the reply in the store: the restarted bridge answers the next push with it', async () => {
    const { harness: before } = await startPassiveBridge({ replies: passiveMode(), weChat, vonage, keepDirectory: true });
    const openid = newOpenid();
    const event = outboundMessage(openid, { content: 'kept across a restart' });
    await postRtcEvent(before.baseUrl, event);
    await waitFor('the reply queued', () => before.logs.some((line) => line.includes('reply queued for the next push')));
    await before.close();

    const { harness: after } = await startPassiveBridge({ replies: passiveMode(), weChat, vonage, directory: path.dirname(before.dbPath) });
    try {
      const result = await textPush(weChat, openid, 'anyone there?');
      expect(result.deliveries).toHaveLength(1);
      expect(result.reply?.text).toBe('kept across a restart');
      expect(await waitFor('the status', () => statusOf(after, event.id))).toMatchObject({ status: 'delivered', via: 'passive' });
    } finally {
      await after.close();
    }
  });
});

describe('passive replies with a conversation per WeChat user', () => {
  let harness: Harness;
  let weChat: FakeWeChat;
  beforeAll(async () => {
    ({ harness, weChat } = await startPassiveBridge({ replies: passiveMode(), perUser: true }));
  });
  afterAll(async () => {
    await harness.close();
    await weChat.close();
  });

  it("answers with an event that leaves `to` to the conversation, and names the user in its status", async () => {
    const openid = newOpenid();
    const pushed = textPush(weChat, openid, 'my own conversation');
    const [inbound] = await waitFor('the inbound event', () => (inboundFrom(harness, openid).length === 1 ? inboundFrom(harness, openid) : undefined), 10_000);
    const event = outboundMessage(undefined, { content: 'to whoever this conversation is' }, { conversation_id: inbound!.conversationId });
    expect((await postRtcEvent(harness.baseUrl, event)).status).toBe(200);
    expect((await pushed).reply?.text).toBe('to whoever this conversation is');
    const status = await waitFor('the status', () =>
      harness.vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(event.id))?.body,
    );
    expect(status).toMatchObject({ status: 'delivered', via: 'passive', to: openid });
  });
});
