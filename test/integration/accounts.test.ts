/**
 * Several Official Accounts in one bridge, end to end over real HTTP: two WeChat platform
 * emulators (each account's users, tokens and push configuration) behind one WeChat API host, as
 * api.weixin.qq.com serves every account, the Vonage emulator, and the real bridge.
 */
import type { Account } from '../../src/accounts';
import { decodeEncodingAesKey } from '../../src/wechat/crypto';
import { startWeChatApiHost, type WeChatApiHost } from '../../src/sandbox/wechat/api-host';
import { startWeChatPlatform, type WeChatPlatform } from '../../src/sandbox/wechat/platform';
import { startHarness, type Harness } from '../support/bridge-harness';
import { startFakeVonage, type FakeVonage } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { pushToBridge, signedPush } from '../support/wechat-push';
import { waitFor } from '../support/wait';
import { TEST_AES_KEY, TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { startFakeWeChat } from '../support/fake-wechat';
import { createTestDatabase } from '../support/postgres';

const ALPHA = { appId: 'wxa1a1a1a1a1a1a1a1', appSecret: 'alpha-secret-0123456789abcdef', token: 'alphaToken', aesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', original: 'gh_a1a1a1a1a1a1' };
const BETA = { appId: 'wxb2b2b2b2b2b2b2b2', appSecret: 'beta-secret-0123456789abcdefgh', token: 'betaToken', aesKey: 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut', original: 'gh_b2b2b2b2b2b2' };

const accountOf = (id: string, a: typeof ALPHA, conversationId?: string): Account => ({
  id,
  appId: a.appId,
  appSecret: a.appSecret,
  token: a.token,
  aesKeys: [decodeEncodingAesKey(a.aesKey)],
  conversationId,
});

interface TwoAccounts {
  alpha: WeChatPlatform;
  beta: WeChatPlatform;
  host: WeChatApiHost;
  vonage: FakeVonage;
  harness: Harness;
  close(): Promise<void>;
}

async function startTwoAccounts(
  options: { conversationId?: string; databaseUrl?: string; vonage?: FakeVonage; platforms?: { alpha: WeChatPlatform; beta: WeChatPlatform } } = {},
): Promise<TwoAccounts> {
  const alpha = options.platforms?.alpha ?? (await startWeChatPlatform({ appId: ALPHA.appId, appSecret: ALPHA.appSecret, accountId: ALPHA.original }));
  const beta = options.platforms?.beta ?? (await startWeChatPlatform({ appId: BETA.appId, appSecret: BETA.appSecret, accountId: BETA.original }));
  const host = await startWeChatApiHost([
    { appId: ALPHA.appId, platform: alpha },
    { appId: BETA.appId, platform: beta },
  ]);
  const perUser = options.conversationId === undefined;
  const vonage =
    options.vonage ?? (await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: perUser ? 'full' : 'events-only' }));
  const harness = await startHarness({
    vonage,
    weChat: alpha,
    weChatBaseUrl: host.baseUrl,
    perUser,
    ...(options.conversationId !== undefined ? { conversationId: options.conversationId } : {}),
    ...(options.databaseUrl !== undefined ? { databaseUrl: options.databaseUrl } : {}),
    accounts: [accountOf('default', ALPHA, options.conversationId), accountOf('beta', BETA, options.conversationId)],
  });
  alpha.connect({ url: `${harness.baseUrl}/weChatEvent`, token: ALPHA.token, mode: 'safe', encodingAesKey: ALPHA.aesKey });
  beta.connect({ url: `${harness.baseUrl}/weChatEvent/beta`, token: BETA.token, mode: 'safe', encodingAesKey: BETA.aesKey });
  return {
    alpha,
    beta,
    host,
    vonage,
    harness,
    async close() {
      await harness.close();
      await host.close();
      if (!options.vonage) await vonage.close();
      if (!options.platforms) {
        await alpha.close();
        await beta.close();
      }
    },
  };
}

const inboundWith = (vonage: FakeVonage, content: string) =>
  vonage.events.find((e) => e.type === 'custom:wechat:message' && e.body.content === content);
const statusFor = (vonage: FakeVonage, eventId: unknown) =>
  vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(eventId));

/** Every token a platform saw used for a send belongs to that platform, and none of one was ever used at the other. */
function expectTokensKeptApart(alpha: WeChatPlatform, beta: WeChatPlatform): void {
  expect(alpha.sent.length).toBeGreaterThan(0);
  expect(beta.sent.length).toBeGreaterThan(0);
  for (const send of alpha.sent) expect(alpha.issuedTokens).toContain(send.accessToken);
  for (const send of beta.sent) expect(beta.issuedTokens).toContain(send.accessToken);
  expect(alpha.issuedTokens.filter((t) => beta.issuedTokens.includes(t))).toEqual([]);
  expect(alpha.tokenRequests.every((r) => (r as { appid?: string }).appid === ALPHA.appId)).toBe(true);
  expect(beta.tokenRequests.every((r) => (r as { appid?: string }).appid === BETA.appId)).toBe(true);
}

describe('two accounts, a conversation per WeChat user', () => {
  let two: TwoAccounts;
  beforeAll(async () => {
    two = await startTwoAccounts();
  });
  afterAll(() => two.close());

  test('each account’s safe-mode pushes reach Vonage with its id; replies go back through its own access token', async () => {
    const alice = await two.alpha.addUser({ nickname: 'Alice' });
    const bob = await two.beta.addUser({ nickname: 'Bob' });
    expect((await two.alpha.sendText(alice.openid, 'hello from alpha')).acknowledged).toBe(true);
    expect((await two.beta.sendText(bob.openid, 'hello from beta')).acknowledged).toBe(true);

    const fromAlice = await waitFor('alpha inbound', () => inboundWith(two.vonage, 'hello from alpha'));
    const fromBob = await waitFor('beta inbound', () => inboundWith(two.vonage, 'hello from beta'));
    expect(fromAlice.body).toMatchObject({ account: 'default', to: ALPHA.original, from: alice.openid });
    expect(fromBob.body).toMatchObject({ account: 'beta', to: BETA.original, from: bob.openid });
    // The default account's conversation names are those a single-account bridge gives; others carry the id.
    const names = two.vonage.conversations().map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining([`wechat:${alice.openid}`, `wechat:beta:${bob.openid}`]));
    expect(fromAlice.conversationId).not.toBe(fromBob.conversationId);

    // Agents answer in each user's conversation without naming the user or the account.
    const toAlice = outboundMessage(undefined, { content: 'hi Alice' }, { conversation_id: fromAlice.conversationId });
    const toBob = outboundMessage(undefined, { content: 'hi Bob' }, { conversation_id: fromBob.conversationId });
    expect((await postRtcEvent(two.harness.baseUrl, toAlice)).status).toBe(200);
    expect((await postRtcEvent(two.harness.baseUrl, toBob)).status).toBe(200);
    await waitFor('both statuses', () => statusFor(two.vonage, toAlice.id) && statusFor(two.vonage, toBob.id));
    expect(statusFor(two.vonage, toAlice.id)!.body).toMatchObject({ status: 'delivered' });
    expect(statusFor(two.vonage, toBob.id)!.body).toMatchObject({ status: 'delivered' });

    expect(two.alpha.chat(alice.openid).some((item) => JSON.stringify(item).includes('hi Alice'))).toBe(true);
    expect(two.beta.chat(bob.openid).some((item) => JSON.stringify(item).includes('hi Bob'))).toBe(true);
    expect(two.alpha.sent.map((s) => (s.json as { touser: string }).touser)).not.toContain(bob.openid);
    expect(two.beta.sent.map((s) => (s.json as { touser: string }).touser)).not.toContain(alice.openid);
    expectTokensKeptApart(two.alpha, two.beta);

    const metrics = await (await fetch(`${two.harness.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/wechat_bridge_account_messages_total\{account="beta",direction="outbound"\} 1/);
    expect(metrics).toMatch(/wechat_bridge_account_token_refreshes_total\{account="beta"\} 1/);
    expect(metrics).toMatch(/wechat_bridge_account_token_refreshes_total\{account="default"\} 1/);
    // Neither account's secret nor any token reached a log line.
    const logs = two.harness.logs.join('');
    for (const secret of [ALPHA.appSecret, BETA.appSecret, ...two.alpha.issuedTokens, ...two.beta.issuedTokens]) expect(logs).not.toContain(secret);
  });

  test("a push signed with another account's token is 401 at either path; an unknown account's path is 404", async () => {
    const xml = `<xml><ToUserName>${BETA.original}</ToUserName><FromUserName>oX</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType>text</MsgType><Content>forged</Content><MsgId>1</MsgId></xml>`;
    const atDefault = await pushToBridge(two.harness.baseUrl, xml, { token: BETA.token });
    expect(atDefault.status).toBe(401);
    const betaPush = await fetch(`${two.harness.baseUrl}/weChatEvent/beta?${new URLSearchParams(signedQuery(ALPHA.token))}`, { method: 'POST', body: xml });
    expect(betaPush.status).toBe(401);
    const unknown = await fetch(`${two.harness.baseUrl}/weChatEvent/gamma?${new URLSearchParams(signedQuery(BETA.token))}`, { method: 'POST', body: xml });
    expect(unknown.status).toBe(404);
    // URL verification (GET) is per account too.
    const echo = await fetch(`${two.harness.baseUrl}/weChatEvent/beta?${new URLSearchParams({ ...signedQuery(BETA.token), echostr: 'e42' })}`);
    expect([echo.status, await echo.text()]).toEqual([200, 'e42']);
    const wrong = await fetch(`${two.harness.baseUrl}/weChatEvent/beta?${new URLSearchParams({ ...signedQuery(ALPHA.token), echostr: 'e42' })}`);
    expect(wrong.status).toBe(401);
    expect(inboundWith(two.vonage, 'forged')).toBeUndefined();
  });

  test('the same openid and MsgId at two accounts are two messages (dedup is per account), each retry stored once', async () => {
    const xml = (original: string) =>
      `<xml><ToUserName>${original}</ToUserName><FromUserName>oSameOpenid</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime>` +
      `<MsgType>text</MsgType><Content>same ids ${original}</Content><MsgId>777</MsgId></xml>`;
    for (let retry = 0; retry < 2; retry += 1) {
      expect((await pushToBridge(two.harness.baseUrl, xml(ALPHA.original), { token: ALPHA.token })).text).toBe('success');
      const beta = await fetch(`${two.harness.baseUrl}/weChatEvent/beta?${new URLSearchParams(signedQuery(BETA.token))}`, { method: 'POST', body: xml(BETA.original) });
      expect(await beta.text()).toBe('success');
    }
    await waitFor('both', () => inboundWith(two.vonage, `same ids ${ALPHA.original}`) && inboundWith(two.vonage, `same ids ${BETA.original}`));
    const copies = two.vonage.events.filter((e) => String(e.body.content).startsWith('same ids'));
    expect(copies.map((e) => e.body.account).sort()).toEqual(['beta', 'default']);
    expect(two.vonage.conversations().filter((c) => c.name.endsWith('oSameOpenid')).map((c) => c.name).sort()).toEqual(['wechat:beta:oSameOpenid', 'wechat:oSameOpenid']);
  });
});

describe('two accounts sharing one conversation', () => {
  const SHARED = 'CON-shared-aaaa-bbbb-cccc-dddddddddddd';
  let two: TwoAccounts;
  beforeAll(async () => {
    two = await startTwoAccounts({ conversationId: SHARED });
  });
  afterAll(() => two.close());

  test('body.account names the sending account; without it the event fails with missing_account', async () => {
    const bob = await two.beta.addUser({ nickname: 'Bob' });
    await two.beta.sendText(bob.openid, 'shared hello');
    const inbound = await waitFor('inbound', () => inboundWith(two.vonage, 'shared hello'));
    expect(inbound.body).toMatchObject({ account: 'beta', from: bob.openid });
    expect(inbound.conversationId).toBe(SHARED);

    const unnamed = outboundMessage(bob.openid, { content: 'who sends?' }, { conversation_id: SHARED });
    const named = outboundMessage(bob.openid, { content: 'beta sends', account: 'beta' }, { conversation_id: SHARED });
    const wrongAccount = outboundMessage(bob.openid, { content: 'alpha cannot', account: 'default' }, { conversation_id: SHARED });
    for (const event of [unnamed, named, wrongAccount]) expect((await postRtcEvent(two.harness.baseUrl, event)).status).toBe(200);
    await waitFor('three statuses', () => [unnamed, named, wrongAccount].every((e) => statusFor(two.vonage, e.id)));

    expect(statusFor(two.vonage, unnamed.id)!.body).toMatchObject({ status: 'failed', error_code: 'missing_account' });
    expect(statusFor(two.vonage, named.id)!.body).toMatchObject({ status: 'delivered' });
    // Alpha's token cannot message Beta's follower: WeChat refuses the openid (40003).
    expect(statusFor(two.vonage, wrongAccount.id)!.body).toMatchObject({ status: 'failed', error_code: '40003' });
    expect(two.beta.sent.map((s) => (s.json as { text?: { content: string } }).text?.content)).toEqual(['beta sends']);
    for (const send of two.beta.sent) expect(two.beta.issuedTokens).toContain(send.accessToken);
    for (const send of two.alpha.requests) expect(two.alpha.issuedTokens).toContain(send.accessToken);
  });

  test('each account keeps its own reply window for a user, and a template result comes back to its own event', async () => {
    const carol = await two.beta.addUser({ nickname: 'Carol' });
    await two.beta.sendText(carol.openid, 'window at beta');
    const inbound = await waitFor('beta inbound', () => inboundWith(two.vonage, 'window at beta'));
    // Followed (3) and wrote (5) at beta.
    expect(inbound.body).toMatchObject({ account: 'beta', reply_window: { replies_left: 8 } });

    // One conversation for both accounts: the reply names the user and the account.
    const reply = outboundMessage(carol.openid, { content: 'hi Carol', account: 'beta' }, { conversation_id: inbound.conversationId });
    await postRtcEvent(two.harness.baseUrl, reply);
    await waitFor('the reply status', () => statusFor(two.vonage, reply.id));
    expect(statusFor(two.vonage, reply.id)!.body).toMatchObject({ status: 'delivered', reply_window: { replies_left: 7 } });

    const template = outboundMessage(
      carol.openid,
      { msg_type: 'template', account: 'beta', template_id: 'tmpl_service_reply_8KqW2', data: { thing1: 'Your parcel left', time2: '2026-12-02 15:00' } },
      { conversation_id: inbound.conversationId },
    );
    await postRtcEvent(two.harness.baseUrl, template);
    const results = await waitFor('two statuses', () => {
      const found = two.vonage.events.filter((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(template.id));
      return found.length === 2 ? found : undefined;
    });
    const [sent] = two.beta.notifications;
    expect(results.map((e) => e.body)).toEqual([
      expect.objectContaining({ status: 'delivered', msg_id: sent!.msgId }),
      expect.objectContaining({ status: 'delivered', msg_id: sent!.msgId }),
    ]);
    expect(two.alpha.notifications).toHaveLength(0);
  });
});

/** The query of a plain-mode push signed with `token` (timestamp, nonce, signature), as WeChat signs a callback. */
const signedQuery = (token: string): Record<string, string> =>
  Object.fromEntries(new URLSearchParams(signedPush('<xml></xml>', { token }).path.split('?')[1]));

describe('a database of a single-account bridge', () => {
  test('keeps working when accounts are added: its pending jobs, dedup keys, conversations and stored token stay the default account’s', async () => {
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'full' });
    const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    const user = 'oSingleAccountUser_0123456789';
    const xml = (content: string, msgId: string) =>
      `<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>${user}</FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime>` +
      `<MsgType>text</MsgType><Content>${content}</Content><MsgId>${msgId}</MsgId></xml>`;
    const messages = () => vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === user);
    try {
      // Before: one account from the single-account variables, as every bridge so far was configured.
      const before = await startHarness({ perUser: true, vonage, weChat, keepDirectory: true });
      const directory = before.dbPath.replace(/\/bridge\.db$/, '');
      let conversationId: string;
      try {
        expect((await pushToBridge(before.baseUrl, xml('first', '9001'), { token: TEST_TOKEN })).text).toBe('success');
        conversationId = (await waitFor('first', () => messages()[0])).conversationId;
        const reply = outboundMessage(undefined, { content: 'reply before' }, { conversation_id: conversationId });
        await postRtcEvent(before.baseUrl, reply);
        await waitFor('reply status', () => statusFor(vonage, reply.id));
        // Vonage down: the next message stays queued in the database across the upgrade.
        vonage.script(Array.from({ length: 40 }, () => ({ status: 503 })));
        expect((await pushToBridge(before.baseUrl, xml('queued', '9002'), { token: TEST_TOKEN })).text).toBe('success');
        await waitFor('a failed delivery', () => vonage.traffic.recent().some((t) => t.status === 503));
      } finally {
        await before.close();
      }
      for (let n = 0; n < 45; n += 1) if ((await fetch(`${vonage.baseUrl}/nothing`)).status !== 503) break;
      const tokenFetches = weChat.tokenFetches;

      // After: the same database with an accounts file adding `beta` beside `default`.
      const after = await startHarness({
        perUser: true,
        vonage,
        weChat,
        directory,
        accounts: [
          { id: 'default', appId: TEST_APP_ID, appSecret: TEST_APP_SECRET, token: TEST_TOKEN, aesKeys: [TEST_AES_KEY], conversationId: undefined },
          accountOf('beta', BETA),
        ],
      });
      try {
        const queued = await waitFor('the queued message', () => messages().find((e) => e.body.content === 'queued'), 15_000);
        expect(queued.conversationId).toBe(conversationId);
        // WeChat retries the first message: its dedup key from before still matches.
        expect((await pushToBridge(after.baseUrl, xml('first', '9001'), { token: TEST_TOKEN })).text).toBe('success');
        expect((await pushToBridge(after.baseUrl, xml('third', '9003'), { token: TEST_TOKEN })).text).toBe('success');
        const third = await waitFor('third', () => messages().find((e) => e.body.content === 'third'));
        expect(third.conversationId).toBe(conversationId);
        expect(third.body.account).toBe('default');
        expect(messages().filter((e) => e.body.content === 'first')).toHaveLength(1);
        expect(vonage.conversations().filter((c) => c.name === `wechat:${user}`)).toHaveLength(1);

        const reply = outboundMessage(undefined, { content: 'reply after' }, { conversation_id: conversationId });
        await postRtcEvent(after.baseUrl, reply);
        expect((await waitFor('reply status', () => statusFor(vonage, reply.id))).body).toMatchObject({ status: 'delivered' });
        expect(weChat.sent.map((s) => s.json)).toEqual(
          expect.arrayContaining([expect.objectContaining({ touser: user, text: { content: 'reply after' } })]),
        );
        // The access token stored before the upgrade is the default account's still: no new fetch.
        expect(weChat.tokenFetches).toBe(tokenFetches);
      } finally {
        await after.close();
      }
    } finally {
      await vonage.close();
      await weChat.close();
    }
  }, 60_000);
});

describe('two instances with two accounts on one PostgreSQL database', () => {
  test('each account has one access token, fetched once and shared by both instances, never used for the other account', async () => {
    const SHARED = 'CON-shared-instances-0000-000000000000';
    const db = await createTestDatabase('bridge_accounts');
    const alpha = await startWeChatPlatform({ appId: ALPHA.appId, appSecret: ALPHA.appSecret, accountId: ALPHA.original });
    const beta = await startWeChatPlatform({ appId: BETA.appId, appSecret: BETA.appSecret, accountId: BETA.original });
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'events-only' });
    const instances: TwoAccounts[] = [];
    try {
      for (let n = 0; n < 2; n += 1) instances.push(await startTwoAccounts({ conversationId: SHARED, databaseUrl: db.url, vonage, platforms: { alpha, beta } }));
      const alice = await alpha.addUser({ nickname: 'Alice' });
      const bob = await beta.addUser({ nickname: 'Bob' });
      await alpha.sendText(alice.openid, 'window please');
      await beta.sendText(bob.openid, 'window please');

      const events = instances.flatMap((instance) => [
        { instance, event: outboundMessage(alice.openid, { content: 'to Alice', account: 'default' }, { conversation_id: SHARED }) },
        { instance, event: outboundMessage(bob.openid, { content: 'to Bob', account: 'beta' }, { conversation_id: SHARED }) },
      ]);
      await Promise.all(events.map(({ instance, event }) => postRtcEvent(instance.harness.baseUrl, event)));
      await waitFor('four statuses', () => events.every(({ event }) => statusFor(vonage, event.id)), 15_000);
      for (const { event } of events) expect(statusFor(vonage, event.id)!.body).toMatchObject({ status: 'delivered' });

      expect([alpha.tokenFetches, beta.tokenFetches]).toEqual([1, 1]);
      expect(alpha.sent.map((send) => (send.json as { touser: string }).touser)).toEqual([alice.openid, alice.openid]);
      expect(beta.sent.map((send) => (send.json as { touser: string }).touser)).toEqual([bob.openid, bob.openid]);
      expectTokensKeptApart(alpha, beta);
    } finally {
      for (const instance of instances) await instance.close();
      await vonage.close();
      await alpha.close();
      await beta.close();
      await db.drop();
    }
  }, 60_000);
});
