/**
 * The fake WeChat API of the bridge's tests: the sandbox's WeChat platform emulator
 * (src/sandbox/wechat/platform.ts) with `unknownUsers: 'accept'`, so that any openid can be messaged
 * as if it were a follower who just wrote (stable_token, custom/send, custom/typing, media, `inject`
 * for failures, `expireTokens`). One implementation serves the tests and the sandbox.
 */
import { startWeChatPlatform, type WeChatPlatform } from '../../src/sandbox/wechat/platform';

export type { InjectedResponse, SentRequest } from '../../src/sandbox/wechat/state';

export type FakeWeChat = WeChatPlatform;

export function startFakeWeChat(options: {
  appId: string;
  appSecret: string;
  tokenTtlSeconds?: number;
  now?: () => number;
}): Promise<FakeWeChat> {
  return startWeChatPlatform({ ...options, unknownUsers: 'accept' });
}
