/**
 * Per-user conversation mode end to end (VONAGE_CONVERSATION_ID unset): the real bridge between
 * signed WeChat pushes, the Vonage emulator's whole API (conversations, users, members,
 * duplicate-name errors) and the WeChat emulator's customer-service API.
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { SqliteStore } from '../../src/store/sqlite/store';
import { startFakeVonage, type FakeVonage, type RecordedEvent } from '../support/fake-vonage';
import { startHarness, TEST_TOKEN, TEST_VONAGE_APP_ID, type Harness } from '../support/bridge-harness';
import { testKeyPair } from '../support/keys';
import { createTestDatabase } from '../support/postgres';
import { outboundMessage, postRtcEvent, rtcEvent } from '../support/rtc-events';
import { pushToBridge } from '../support/wechat-push';
import { sleep, waitFor } from '../support/wait';

const ACCOUNT = 'gh_0123456789ab';
let nextMsgId = 24_000_000_000_000_000n;

const textXml = (openid: string, content: string, msgId = String((nextMsgId += 1n))) =>
  `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
  `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
  `<Content><![CDATA[${content}]]></Content><MsgId>${msgId}</MsgId></xml>`;

const eventXml = (openid: string, event: string, createTime: number) =>
  `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
  `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[${event}]]></Event></xml>`;

const push = (harness: Harness, xml: string) => pushToBridge(harness.baseUrl, xml, { token: TEST_TOKEN });
const openid = () => `o${crypto.randomBytes(14).toString('base64url')}`;


const conversationOf = (vonage: FakeVonage, user: string) => vonage.conversations().filter((c) => c.name === `wechat:${user}`);
const messagesFrom = (vonage: FakeVonage, user: string): RecordedEvent[] =>
  vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === user);
const statusFor = (vonage: FakeVonage, eventId: unknown) =>
  vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(eventId));

/** The members of a conversation, through the emulator's own API (as any Vonage client would). */
async function membersOf(vonage: FakeVonage, conversationId: string): Promise<Array<{ id: string; _embedded: { user: { id: string; name: string } } }>> {
  const response = await vonageApi(vonage, 'GET', `/conversations/${encodeURIComponent(conversationId)}/members?page_size=100`);
  return (response as { _embedded: { members: never[] } })._embedded.members;
}

async function vonageApi(vonage: FakeVonage, method: string, path: string, body?: unknown): Promise<unknown> {
  const iat = Math.floor(Date.now() / 1000);
  const token = jwt.sign({ application_id: TEST_VONAGE_APP_ID, iat, jti: crypto.randomUUID(), exp: iat + 300 }, testKeyPair().privateKeyPem, {
    algorithm: 'RS256',
  });
  const response = await fetch(`${vonage.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json: unknown = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

describe('a conversation per WeChat user', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({ perUser: true });
  });
  afterAll(() => harness.close());

  test('20 concurrent first messages of one user create exactly one conversation, user and member', async () => {
    const user = openid();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => push(harness, textXml(user, `message ${n}`))));
    expect(answers.every((a) => a.status === 200 && a.text === 'success')).toBe(true);
    await waitFor('20 events', () => messagesFrom(harness.vonage, user).length === 20);

    const [conversation, ...more] = conversationOf(harness.vonage, user);
    expect(more).toEqual([]);
    expect(conversation!.display_name).toBe(`WeChat ${user} · ${ACCOUNT}`);
    const members = await membersOf(harness.vonage, conversation!.id);
    expect(members).toHaveLength(1);
    expect(members[0]!._embedded.user.name).toBe(`wechat-${user}`);

    // Every event is in the user's conversation, from the user's member, with the openid in the body.
    for (const event of messagesFrom(harness.vonage, user)) {
      expect(event.conversationId).toBe(conversation!.id);
      expect(event.from).toBe(members[0]!.id);
      expect(event.body).toMatchObject({ direction: 'inbound', from: user, to: ACCOUNT });
    }
    // Each message exactly once (they were pushed at once, so in no particular order).
    expect(messagesFrom(harness.vonage, user).map((e) => e.body.content).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `message ${n}`).sort());
  });

  test('first messages of ten users at once: ten conversations, one each', async () => {
    const users = Array.from({ length: 10 }, openid);
    await Promise.all(users.flatMap((user) => [push(harness, textXml(user, 'hi')), push(harness, textXml(user, 'there'))]));
    await waitFor('every message', () => users.every((user) => messagesFrom(harness.vonage, user).length === 2));
    for (const user of users) {
      const conversations = conversationOf(harness.vonage, user);
      expect(conversations).toHaveLength(1);
      expect(new Set(messagesFrom(harness.vonage, user).map((e) => e.conversationId))).toEqual(new Set([conversations[0]!.id]));
    }
  });

  test('subscribe and unsubscribe reach the user\'s conversation, so agents see who follows', async () => {
    const user = openid();
    const at = Math.floor(Date.now() / 1000);
    expect(await push(harness, eventXml(user, 'subscribe', at))).toEqual({ status: 200, text: 'success' });
    expect(await push(harness, eventXml(user, 'unsubscribe', at + 1))).toEqual({ status: 200, text: 'success' });
    const events = await waitFor('both events', () => {
      const found = messagesFrom(harness.vonage, user);
      return found.length === 2 ? found : undefined;
    });
    expect(events.map((e) => [e.body.event, e.body.content])).toEqual([
      ['subscribe', '[followed the account]'],
      ['unsubscribe', '[unfollowed the account]'],
    ]);
    expect(new Set(events.map((e) => e.conversationId))).toEqual(new Set([conversationOf(harness.vonage, user)[0]!.id]));
  });

  test('an agent\'s reply without `to` goes to the conversation\'s user, with its status in that conversation', async () => {
    const user = openid();
    await push(harness, textXml(user, 'where is my parcel?'));
    await waitFor('the inbound event', () => messagesFrom(harness.vonage, user).length === 1);
    const conversationId = conversationOf(harness.vonage, user)[0]!.id;

    const typing = rtcEvent('custom:wechat:typing', { command: 'Typing' }, { conversation_id: conversationId });
    const reply = outboundMessage(undefined, { content: 'On its way!' }, { conversation_id: conversationId });
    const sends = harness.weChat.sent.length;
    expect(await postRtcEvent(harness.baseUrl, typing)).toEqual({ status: 200, text: 'ok' });
    expect(await postRtcEvent(harness.baseUrl, reply)).toEqual({ status: 200, text: 'ok' });
    const sent = (await harness.weChat.waitForSends(sends + 2)).slice(sends);
    // In order: the typing indicator first, then the message, both to the user.
    expect(sent.map((s) => [s.path, s.json])).toEqual([
      ['/cgi-bin/message/custom/typing', { touser: user, command: 'Typing' }],
      ['/cgi-bin/message/custom/send', { touser: user, msgtype: 'text', text: { content: 'On its way!' } }],
    ]);
    const status = await waitFor('the status', () => statusFor(harness.vonage, reply.id));
    expect(status.conversationId).toBe(conversationId);
    // The user wrote once: 5 replies in 48 hours, this one used.
    expect(status.body).toEqual({ status: 'delivered', ref_event_id: String(reply.id), to: user, reply_window: { closes_at: expect.any(Number), replies_left: 4 } });

    // Naming the user explicitly works too.
    const named = outboundMessage(user, { content: 'Anything else?' }, { conversation_id: conversationId });
    await postRtcEvent(harness.baseUrl, named);
    expect((await waitFor('the second status', () => statusFor(harness.vonage, named.id))).body).toMatchObject({ status: 'delivered', to: user });
  });

  test('`to` naming another user, or a conversation the bridge does not know, fails with a status (never silently)', async () => {
    const user = openid();
    await push(harness, textXml(user, 'hello'));
    await waitFor('the inbound event', () => messagesFrom(harness.vonage, user).length === 1);
    const conversationId = conversationOf(harness.vonage, user)[0]!.id;
    const sends = harness.weChat.requests.length;

    const misdirected = outboundMessage('oSomebodyElse', { content: 'not for you' }, { conversation_id: conversationId });
    await postRtcEvent(harness.baseUrl, misdirected);
    expect((await waitFor('the mismatch status', () => statusFor(harness.vonage, misdirected.id))).body).toMatchObject({
      status: 'failed',
      error_code: 'recipient_mismatch',
    });

    // A conversation an agent made by hand: the bridge has nobody to send to.
    const other = (await vonageApi(harness.vonage, 'POST', '/conversations', { name: `support-${crypto.randomUUID()}` })) as { id: string };
    const stray = outboundMessage(undefined, { content: 'hello?' }, { conversation_id: other.id });
    await postRtcEvent(harness.baseUrl, stray);
    const status = await waitFor('the unknown-conversation status', () => statusFor(harness.vonage, stray.id));
    expect(status.conversationId).toBe(other.id);
    expect(status.body).toMatchObject({ status: 'failed', error_code: 'unknown_conversation', error_message: expect.stringContaining(other.id) });
    expect(harness.weChat.requests.length).toBe(sends); // nothing went to WeChat
  });
});

test('two instances on one PostgreSQL database, 20 first messages of one user spread over both: one conversation', async () => {
  const db = await createTestDatabase('bridge_per_user');
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'full' });
  const instances: Harness[] = [];
  try {
    instances.push(await startHarness({ perUser: true, vonage, databaseUrl: db.url }));
    instances.push(await startHarness({ perUser: true, vonage, databaseUrl: db.url }));
    const user = openid();
    // Each message to one instance, and every fourth also to the other (a WeChat retry landing elsewhere).
    const xmls = Array.from({ length: 20 }, (_, n) => textXml(user, `m${n}`));
    const answers = await Promise.all(
      xmls.flatMap((xml, n) => [push(instances[n % 2]!, xml), ...(n % 4 === 0 ? [push(instances[(n + 1) % 2]!, xml)] : [])]),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    await waitFor('20 events', () => messagesFrom(vonage, user).length >= 20, 15_000);
    await sleep(200);
    // Each message exactly once, retries landing on the other instance included.
    expect(messagesFrom(vonage, user).map((e) => e.body.content).sort()).toEqual(Array.from({ length: 20 }, (_, n) => `m${n}`).sort());
    const conversations = conversationOf(vonage, user);
    expect(conversations).toHaveLength(1);
    expect(await membersOf(vonage, conversations[0]!.id)).toHaveLength(1);
  } finally {
    for (const instance of instances) await instance.close();
    await vonage.close();
    await db.drop();
  }
}, 30_000);

describe('restarts between the calls that make a conversation', () => {
  let vonage: FakeVonage;
  beforeEach(async () => {
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'full' });
  });
  afterEach(() => vonage.close());

  test('killed after Vonage made the conversation and user, before the store knew: the next run adopts them', async () => {
    const user = openid();
    // What a bridge that died right after those two calls leaves behind: objects in Vonage, nothing stored.
    const made = (await vonageApi(vonage, 'POST', '/conversations', { name: `wechat:${user}` })) as { id: string };
    await vonageApi(vonage, 'POST', '/users', { name: `wechat-${user}` });

    const harness = await startHarness({ perUser: true, vonage });
    try {
      await push(harness, textXml(user, 'after the crash'));
      const [event] = await waitFor('the event', () => {
        const found = messagesFrom(vonage, user);
        return found.length === 1 ? found : undefined;
      });
      expect(conversationOf(vonage, user)).toHaveLength(1);
      expect(event!.conversationId).toBe(made.id);
      expect(event!.from).toBe((await membersOf(vonage, made.id))[0]!.id);
    } finally {
      await harness.close();
    }
  });

  test('stopped after the conversation and user were stored, before the member: the restarted bridge joins only the member', async () => {
    const user = openid();
    // The member call fails (Vonage down) until the bridge is stopped.
    vonage.script([{ delayMs: 0 }, { delayMs: 0 }, ...Array.from({ length: 20 }, () => ({ status: 503 }))]);
    const first = await startHarness({ perUser: true, vonage, keepDirectory: true });
    let directory: string;
    try {
      await push(first, textXml(user, 'through a restart'));
      await waitFor('the failing member call', () => vonage.traffic.recent().some((t) => t.path.includes('/members') && t.status === 503));
    } finally {
      await first.close();
      directory = first.dbPath.replace(/\/bridge\.db$/, '');
    }
    // Vonage is back: the rest of the scripted failures are used up by requests of our own.
    for (let n = 0; n < 25; n += 1) {
      if ((await fetch(`${vonage.baseUrl}/nothing`)).status !== 503) break;
    }
    const stored = SqliteStore.open(first.dbPath);
    const mapping = await stored.getConversationMapping(user);
    await stored.close();
    expect(mapping).toMatchObject({ conversationId: expect.stringMatching(/^CON-/), userId: expect.stringMatching(/^USR-/), memberId: undefined });

    const before = vonage.traffic.recent().length;
    const second = await startHarness({ perUser: true, vonage, directory });
    try {
      const [event] = await waitFor('the event', () => {
        const found = messagesFrom(vonage, user);
        return found.length === 1 ? found : undefined;
      }, 15_000);
      expect(event!.conversationId).toBe(mapping!.conversationId);
      expect(conversationOf(vonage, user)).toHaveLength(1);
      const creates = vonage.traffic
        .recent()
        .slice(before)
        .filter((t) => t.method === 'POST' && t.status !== undefined && t.status < 300)
        .map((t) => t.path.replace(/CON-[\w-]+/, 'CON'));
      expect(creates).toEqual(['/v1/conversations/CON/members', '/v1/conversations/CON/events']);
    } finally {
      await second.close();
    }
  }, 30_000);
});

describe('fixed mode (VONAGE_CONVERSATION_ID set) is unchanged', () => {
  test('every user in the one conversation, from no member; no conversations, users or members are made', async () => {
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'full' });
    const existing = (await vonageApi(vonage, 'POST', '/conversations', { name: 'all customers' })) as { id: string };
    const harness = await startHarness({ vonage, conversationId: existing.id });
    try {
      const [a, b] = [openid(), openid()];
      await push(harness, textXml(a, 'from a'));
      await push(harness, textXml(b, 'from b'));
      await waitFor('both events', () => messagesFrom(vonage, a).length === 1 && messagesFrom(vonage, b).length === 1);
      expect(vonage.events.every((e) => e.conversationId === existing.id && e.from === undefined)).toBe(true);
      expect(vonage.conversations()).toHaveLength(1);
      expect(vonage.traffic.recent().filter((t) => t.method === 'POST' && !t.path.endsWith('/events'))).toHaveLength(1); // ours, above
    } finally {
      await harness.close();
      await vonage.close();
    }
  });
});
