/**
 * The WeChat API host of several accounts: each request reaches the emulator of the account whose
 * credentials it carries, and credentials of no account get WeChat's refusals.
 */
import { startWeChatApiHost, type WeChatApiHost } from '../../../src/sandbox/wechat/api-host';
import { startWeChatPlatform, type WeChatPlatform } from '../../../src/sandbox/wechat/platform';

describe('one WeChat API host for two accounts', () => {
  let a: WeChatPlatform;
  let b: WeChatPlatform;
  let host: WeChatApiHost;
  beforeAll(async () => {
    a = await startWeChatPlatform({ appId: 'wxaaaaaaaaaaaaaaaa', appSecret: 'secret-a', unknownUsers: 'accept' });
    b = await startWeChatPlatform({ appId: 'wxbbbbbbbbbbbbbbbb', appSecret: 'secret-b', unknownUsers: 'accept' });
    host = await startWeChatApiHost([
      { appId: 'wxaaaaaaaaaaaaaaaa', platform: a },
      { appId: 'wxbbbbbbbbbbbbbbbb', platform: b },
    ]);
  });
  afterAll(async () => {
    await host.close();
    await a.close();
    await b.close();
  });

  const post = async (path: string, body: unknown) =>
    (await (await fetch(`${host.baseUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as Record<string, unknown>;
  const tokenOf = async (appid: string, secret: string) =>
    (await post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid, secret })).access_token as string;

  test('stable_token goes to the AppID’s account; an unknown AppID is 40013, a wrong secret the account’s own 40125', async () => {
    const tokenA = await tokenOf('wxaaaaaaaaaaaaaaaa', 'secret-a');
    const tokenB = await tokenOf('wxbbbbbbbbbbbbbbbb', 'secret-b');
    expect(a.issuedTokens).toEqual([tokenA]);
    expect(b.issuedTokens).toEqual([tokenB]);
    expect(await post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid: 'wxcccccccccccccccc', secret: 'x' })).toMatchObject({ errcode: 40013 });
    expect(await post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid: 'wxbbbbbbbbbbbbbbbb', secret: 'secret-a' })).toMatchObject({ errcode: 40125 });
  });

  test('a send reaches the account whose token it carries; a token of no account is 40001 and reaches none', async () => {
    const tokenB = await tokenOf('wxbbbbbbbbbbbbbbbb', 'secret-b');
    const message = { touser: 'oUser', msgtype: 'text', text: { content: 'hi' } };
    expect(await post(`/cgi-bin/message/custom/send?access_token=${tokenB}`, message)).toMatchObject({ errcode: 0 });
    expect(b.sent.map((s) => s.accessToken)).toEqual([tokenB]);
    expect(a.requests).toEqual([]);
    expect(await post('/cgi-bin/message/custom/send?access_token=forged', message)).toMatchObject({ errcode: 40001 });
    expect(a.requests.length + b.requests.length).toBe(1);
  });
});
