/**
 * The sandbox's passive-reply demo: the WeChat account switched to "unverified subscription account"
 * (custom/send answers 48001) and the demo bot on, from the console's API. The bridge runs in auto
 * reply mode, so after the first 48001 each push is answered with the bot's reply.
 */
import { startSandbox, type Sandbox } from '../../src/sandbox/sandbox';
import { createLogger } from '../../src/logger';
import { waitFor } from '../support/wait';

const silent = createLogger({ level: 'silent' });

describe('the sandbox as an unverified subscription account with the demo bot', () => {
  let sandbox: Sandbox;
  let base: string;
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${base}/sandbox/api${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };
  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, logger: silent });
    base = `http://127.0.0.1:${sandbox.port}`;
    // The user's follow at start reaches Vonage before the bot is on: it is not answered.
    const openid = sandbox.weChat.users()[0]!.openid;
    await waitFor('the follow at Vonage', () => {
      const conversationId = sandbox.conversationOf(openid);
      return conversationId !== undefined && sandbox.vonage.conversationEvents(conversationId).some((e) => e.body.event === 'subscribe');
    });
  });
  afterAll(() => sandbox.stop());

  test('the console switches the account type and the bot, and refuses anything else', async () => {
    expect(await post('/wechat/account-type', { type: 'unverified-subscription' })).toEqual({ status: 200, json: { accountType: 'unverified-subscription' } });
    expect((await post('/wechat/account-type', { type: 'premium' })).status).toBe(400);
    expect(await post('/demo-bot', { enabled: true })).toEqual({ status: 200, json: { demoBot: true } });
    expect((await post('/demo-bot', { enabled: 'yes' })).status).toBe(400);
    const state = (await (await fetch(`${base}/sandbox/api/state`)).json()) as Record<string, unknown>;
    expect(state).toMatchObject({ accountType: 'unverified-subscription', demoBot: true });
  });

  test("after custom/send's 48001 the bot's replies ride on the answers to the user's messages", async () => {
    const [user] = sandbox.weChat.users();
    const openid = user!.openid;
    await waitFor('the conversation', () => sandbox.conversationOf(openid));
    const first = await sandbox.weChat.sendText(openid, 'first');
    // Not known to be passive yet: `success` at once; the bot's answer gets 48001 from custom/send.
    expect(first.deliveries.map((d) => d.body)).toEqual(['success']);
    await waitFor('the 48001', () => sandbox.weChat.requests.some((r) => r.path.endsWith('/custom/send')), 10_000);

    const second = await sandbox.weChat.sendText(openid, 'second');
    expect(second.reply?.text).toBe('🤖 Demo bot: you said “first”');
    const third = await sandbox.weChat.sendText(openid, 'third');
    expect(third.reply?.text).toBe('🤖 Demo bot: you said “second”');
    expect(third.deliveries).toHaveLength(1);

    // The phone shows the replies; Vonage has their statuses, delivered via passive.
    expect(sandbox.weChat.chat(openid).filter((item) => item.from === 'account').map((item) => item.text)).toEqual([
      '🤖 Demo bot: you said “first”',
      '🤖 Demo bot: you said “second”',
    ]);
    const conversationId = sandbox.conversationOf(openid)!;
    await waitFor('two passive statuses', () =>
      sandbox.vonage.conversationEvents(conversationId).filter((e) => e.type === 'custom:wechat:status' && e.body.via === 'passive').length === 2 || undefined,
    );
  }, 30_000);
});
