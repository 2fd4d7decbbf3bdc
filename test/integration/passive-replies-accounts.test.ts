/**
 * Passive replies with several Official Accounts: one mailbox per account and openid. The same
 * openid writing to two accounts gets each account's replies in the answers to that account's own
 * pushes, sealed with that account's keys (safe mode), never the other's.
 */
import type { Account } from '../../src/accounts';
import { startWeChatApiHost } from '../../src/sandbox/wechat/api-host';
import { userActionXml } from '../../src/sandbox/wechat/messages';
import { startWeChatPlatform, type WeChatPlatform } from '../../src/sandbox/wechat/platform';
import { decodeEncodingAesKey } from '../../src/wechat/crypto';
import { startHarness, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { startFakeVonage } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { waitFor } from '../support/wait';

const ALPHA = { appId: 'wxa3a3a3a3a3a3a3a3', appSecret: 'alpha-secret-0123456789abcdef', token: 'alphaToken', aesKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', original: 'gh_a3a3a3a3a3a3' };
const BETA = { appId: 'wxb4b4b4b4b4b4b4b4', appSecret: 'beta-secret-0123456789abcdefgh', token: 'betaToken', aesKey: 'ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut', original: 'gh_b4b4b4b4b4b4' };
const accountOf = (id: string, a: typeof ALPHA): Account => ({
  id,
  appId: a.appId,
  appSecret: a.appSecret,
  token: a.token,
  aesKeys: [decodeEncodingAesKey(a.aesKey)],
  conversationId: undefined,
});

let msgId = 8_300_000_000_000_000_000n;
const push = (platform: WeChatPlatform, openid: string, content: string) => {
  msgId += 1n;
  return platform.pushXml(
    userActionXml({ kind: 'text', content }, { toUserName: platform.accountId, fromUserName: openid, createTime: Math.floor(Date.now() / 1000), msgId: msgId.toString() }),
  );
};

test('the same openid on two accounts: each account answers its own pushes with its own replies', async () => {
  const alpha = await startWeChatPlatform({ appId: ALPHA.appId, appSecret: ALPHA.appSecret, accountId: ALPHA.original, unknownUsers: 'accept' });
  const beta = await startWeChatPlatform({ appId: BETA.appId, appSecret: BETA.appSecret, accountId: BETA.original, unknownUsers: 'accept' });
  const host = await startWeChatApiHost([
    { appId: ALPHA.appId, platform: alpha },
    { appId: BETA.appId, platform: beta },
  ]);
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID, surface: 'full' });
  const harness = await startHarness({
    vonage,
    weChat: alpha,
    weChatBaseUrl: host.baseUrl,
    perUser: true,
    accounts: [accountOf('default', ALPHA), accountOf('beta', BETA)],
    replies: { mode: 'passive', holdingText: undefined, replyTtlMs: 60_000 },
  });
  alpha.connect({ url: `${harness.baseUrl}/weChatEvent`, token: ALPHA.token, mode: 'safe', encodingAesKey: ALPHA.aesKey });
  beta.connect({ url: `${harness.baseUrl}/weChatEvent/beta`, token: BETA.token, mode: 'safe', encodingAesKey: BETA.aesKey });
  const openid = 'oSameOpenidOnBoth01';
  const conversationOf = (account: string, n = 1) =>
    waitFor(`${account}'s inbound event`, () => {
      const events = vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === openid && e.body.account === account);
      return events.length >= n ? events[n - 1]!.conversationId : undefined;
    }, 10_000);
  try {
    const toBeta = push(beta, openid, 'hello beta');
    const betaConversation = await conversationOf('beta');
    await postRtcEvent(harness.baseUrl, outboundMessage(undefined, { content: 'from beta' }, { conversation_id: betaConversation }));
    expect((await toBeta).reply?.text).toBe('from beta');

    // A reply waiting in beta's mailbox does not answer the same openid's push to alpha.
    await postRtcEvent(harness.baseUrl, outboundMessage(undefined, { content: 'beta, later' }, { conversation_id: betaConversation }));
    await waitFor('the beta reply queued', () => harness.logs.some((line) => line.includes('reply queued') && line.includes('beta:')));
    const toAlpha = push(alpha, openid, 'hello alpha');
    const alphaConversation = await conversationOf('default');
    expect(alphaConversation).not.toBe(betaConversation);
    await postRtcEvent(harness.baseUrl, outboundMessage(undefined, { content: 'from alpha' }, { conversation_id: alphaConversation }));
    const alphaResult = await toAlpha;
    expect(alphaResult.replyError).toBeUndefined();
    expect(alphaResult.reply?.text).toBe('from alpha');
    expect((await push(beta, openid, 'again')).reply?.text).toBe('beta, later');
  } finally {
    await harness.close();
    await host.close();
    await vonage.close();
    await alpha.close();
    await beta.close();
  }
}, 40_000);
