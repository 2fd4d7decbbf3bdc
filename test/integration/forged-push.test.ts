/**
 * A plain push is signed over timestamp and nonce only, not over its body. A captured signed query
 * (for instance from a safe-mode push, whose body is encrypted) must not carry another body: the
 * bridge remembers each query with the content it came with, and WECHAT_MESSAGE_MODES lets an
 * account that pushes encrypted refuse plain pushes altogether. WeChat's own retries (the same
 * query, the same content) are still answered `success` and deduplicated.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startHarness, TEST_AES_KEY, TEST_APP_ID, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { signedPush } from '../support/wechat-push';
import { sleep } from '../support/wait';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const forgedText = (openid: string, content: string, msgId: string) =>
  `<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
  `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
  `<Content><![CDATA[${content}]]></Content><MsgId>${msgId}</MsgId></xml>`;

async function post(harness: Harness, pathWithQuery: string, body: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${harness.baseUrl}${pathWithQuery}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body });
  return { status: response.status, text: await response.text() };
}

/** The query of a push with only what the plain signature covers (and the openid WeChat adds). */
function plainQueryOf(pushPath: string): string {
  const query = new URLSearchParams(pushPath.slice(pushPath.indexOf('?') + 1));
  query.delete('encrypt_type');
  query.delete('msg_signature');
  return `/weChatEvent?${query}`;
}

const settle = () => sleep(300);

describe('with an EncodingAESKey and the default modes', () => {
  let harness: Harness;
  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(() => harness.close());

  test("a safe-mode push's signed query replayed as a plain push with a forged body is refused", async () => {
    const safe = signedPush(TEXT, { token: TEST_TOKEN, mode: 'safe', aesKey: TEST_AES_KEY, appId: TEST_APP_ID });
    expect(await post(harness, safe.path, safe.body)).toEqual({ status: 200, text: 'success' });
    await harness.vonage.waitForEvents(1);

    const logsBefore = harness.logs.length;
    const forged = await post(harness, plainQueryOf(safe.path), forgedText('oVictim', 'transfer the money', '9000000000000000001'));
    expect(forged.status).toBe(401);
    expect(harness.logs.slice(logsBefore).join('')).toContain('401');
    await settle();
    expect(harness.vonage.events).toHaveLength(1);
    expect(harness.vonage.events[0]!.body.content).toBe('this is a test');
  });

  test('a plain query reused for another body is refused; the retries of the first are answered success, once delivered', async () => {
    const push = signedPush(TEXT, { token: TEST_TOKEN });
    expect(await post(harness, push.path, push.body)).toEqual({ status: 200, text: 'success' });
    expect((await post(harness, push.path, forgedText('fromUser', 'forged', '1234567890123457'))).status).toBe(401);
    // WeChat retrying the real push: the same query, the same body.
    expect(await post(harness, push.path, push.body)).toEqual({ status: 200, text: 'success' });
    expect(await post(harness, push.path, push.body)).toEqual({ status: 200, text: 'success' });
    // The forger trying again is still refused.
    expect((await post(harness, push.path, forgedText('fromUser', 'forged', '1234567890123457'))).status).toBe(401);
    await harness.vonage.waitForEvents(1);
    await settle();
    expect(harness.vonage.events.map((e) => e.body.content)).toEqual(['this is a test']);
  });

  test('a retry laid out differently (whitespace, CDATA) is still a retry, not a forgery', async () => {
    const push = signedPush(TEXT, { token: TEST_TOKEN });
    expect(await post(harness, push.path, push.body)).toEqual({ status: 200, text: 'success' });
    const relaid = push.body.replace(/>\s+</g, '><').replace('<MsgId>1234567890123456</MsgId>', '<MsgId><![CDATA[1234567890123456]]></MsgId>');
    expect(await post(harness, push.path, relaid)).toEqual({ status: 200, text: 'success' });
    await harness.vonage.waitForEvents(1);
    await settle();
    expect(harness.vonage.events).toHaveLength(1);
  });

  test('the guard is shared through the store: a second bridge on the same database refuses the reuse', async () => {
    const peer = await startHarness({ databaseUrl: `sqlite:${harness.dbPath}`, vonage: harness.vonage });
    try {
      const push = signedPush(TEXT, { token: TEST_TOKEN });
      expect(await post(harness, push.path, push.body)).toEqual({ status: 200, text: 'success' });
      expect((await post(peer, push.path, forgedText('oVictim', 'forged', '42'))).status).toBe(401);
      expect(await post(peer, push.path, push.body)).toEqual({ status: 200, text: 'success' });
    } finally {
      await peer.close();
    }
  });
});

describe('WECHAT_MESSAGE_MODES', () => {
  test('safe only: a plain push is refused (401) whatever its signature; a safe one is delivered', async () => {
    const harness = await startHarness({ messageModes: ['safe'] });
    try {
      const plain = signedPush(TEXT, { token: TEST_TOKEN });
      expect((await post(harness, plain.path, plain.body)).status).toBe(401);
      const compatible = signedPush(TEXT, { token: TEST_TOKEN, mode: 'compatible', aesKey: TEST_AES_KEY, appId: TEST_APP_ID });
      expect((await post(harness, compatible.path, compatible.body)).status).toBe(401);
      const safe = signedPush(TEXT, { token: TEST_TOKEN, mode: 'safe', aesKey: TEST_AES_KEY, appId: TEST_APP_ID });
      expect(await post(harness, safe.path, safe.body)).toEqual({ status: 200, text: 'success' });
      const events = await harness.vonage.waitForEvents(1);
      await settle();
      expect(events.map((e) => e.body.content)).toEqual(['this is a test']);
      expect(harness.vonage.events).toHaveLength(1);
    } finally {
      await harness.close();
    }
  });

  test('compatible and safe: both encrypted forms are accepted, plain is not', async () => {
    const harness = await startHarness({ messageModes: ['compatible', 'safe'] });
    try {
      expect((await post(harness, signedPush(TEXT, { token: TEST_TOKEN }).path, TEXT)).status).toBe(401);
      const compatible = signedPush(TEXT, { token: TEST_TOKEN, mode: 'compatible', aesKey: TEST_AES_KEY, appId: TEST_APP_ID });
      expect(await post(harness, compatible.path, compatible.body)).toEqual({ status: 200, text: 'success' });
    } finally {
      await harness.close();
    }
  });
});
