/**
 * `send-test <openid> <text>`: one text message through the same path the bridge's outbound jobs
 * take (stable access token → customer-service send), with the same WeChat settings.
 *
 * The access token is kept in memory for this one call rather than in the bridge's store: the
 * stable_token endpoint in normal mode hands out the token that is already current, so fetching it
 * here never invalidates the running bridge's, and the command needs no DATABASE_URL.
 */
import { InvalidInputError } from '../errors';
import { createHttpRequester } from '../outbound-http';
import type { StoredToken } from '../store/store';
import { createWeChatApiClient } from '../wechat/api-client';
import { buildCustomSendBody } from '../wechat/custom-message';
import { AccessTokenManager, type TokenStore } from '../wechat/token-manager';
import { JSON_OPTION, type CommandSpec } from './command';
import { ACCOUNT_OPTION, weChatAppOf } from './account';
import { CliFailure, UsageError } from './errors';

/** A TokenStore for one process: no sharing needed, no locks contended. */
export class MemoryTokenStore implements TokenStore {
  private readonly tokens = new Map<string, StoredToken>();
  private readonly locks = new Map<string, { owner: string; expiresAt: number }>();

  async getToken(name: string): Promise<StoredToken | undefined> {
    return this.tokens.get(name);
  }

  async putToken(name: string, token: StoredToken): Promise<void> {
    this.tokens.set(name, token);
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const held = this.locks.get(name);
    if (held && held.owner !== owner && held.expiresAt > Date.now()) return false;
    this.locks.set(name, { owner, expiresAt: Date.now() + ttlMs });
    return true;
  }

  async unlock(name: string, owner: string): Promise<void> {
    if (this.locks.get(name)?.owner === owner) this.locks.delete(name);
  }
}

export const sendTestCommand: CommandSpec = {
  name: 'send-test',
  args: '<openid> <text> [--account <id>] [--json]',
  summary: 'send a text message to a WeChat user, to check the WeChat settings',
  details: [
    'Sends <text> to the WeChat user <openid> through the customer-service API, exactly as the bridge',
    'sends an agent\'s reply: it fetches an access token with WECHAT_APP_ID and WECHAT_APP_SECRET from',
    'WECHAT_API_BASE_URL (default https://api.weixin.qq.com), then posts the message. Quote a text',
    'with spaces. WeChat only delivers to a user who wrote to the account in the last 48 hours',
    '(errcode 45015 otherwise).',
    '',
    'Reads WECHAT_APP_ID, WECHAT_APP_SECRET and WECHAT_API_BASE_URL from the environment or ./.env,',
    'like the bridge; nothing else is required. The token and the secret are never printed.',
    '',
    'With several accounts (WECHAT_ACCOUNTS_FILE), --account <id> sends as that account, with its own',
    'appID and appsecret from the file.',
  ].join('\n'),
  options: { account: ACCOUNT_OPTION, json: JSON_OPTION },
  positionals: { min: 2, max: 2, hint: 'give an openid and one text (quote it if it has spaces: send-test oUser "hello there")' },
  run: async (args, context) => {
    const [openid, text] = args.positionals as [string, string];
    let body: Record<string, unknown>;
    try {
      body = buildCustomSendBody({ to: openid, body: { msg_type: 'text', content: text } });
    } catch (error) {
      if (error instanceof InvalidInputError) throw new UsageError(error.message, 'send-test');
      throw error;
    }

    const accountOption = typeof args.values.account === 'string' ? args.values.account : undefined;
    const { accountId, appId, appSecret, baseUrl } = weChatAppOf(context.env, context.cwd, accountOption, 'send-test');

    const http = createHttpRequester();
    const tokens = new AccessTokenManager({ appId, appSecret, baseUrl, store: new MemoryTokenStore(), http });
    const weChat = createWeChatApiClient({ baseUrl, tokens, http });
    try {
      await weChat.sendCustomMessage(body);
    } catch (error) {
      // The file's secrets are not in the environment: scrub this account's here.
      const reason = (error instanceof Error ? error.message : String(error)).split(appSecret).join('[secret]');
      throw new CliFailure(`WeChat did not take the message: ${reason}`);
    } finally {
      http.close();
    }

    const fromAccount = accountOption !== undefined ? { account: accountId } : {};
    if (args.values.json) context.print(`${JSON.stringify({ sent: true, to: openid, msgtype: 'text', ...fromAccount }, null, 2)}\n`);
    else context.print(`Sent a text message to ${openid}${accountOption !== undefined ? ` as account ${accountId}` : ''}.\n`);
  },
};
