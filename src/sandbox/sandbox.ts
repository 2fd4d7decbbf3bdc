/**
 * The sandbox: the production bridge (`startBridge`, unchanged) with its two remote ends replaced by
 * the emulators on loopback, a throwaway SQLite store, and the browser console mounted at `/`.
 *
 * Everything is made up at start: WeChat token, AppID, app secret and EncodingAESKey, a Vonage
 * application id with a fresh RSA key pair, a signature secret (so `/rtcEvent` runs in signed mode,
 * as it should in production). The bridge runs in per-user conversation mode (no
 * VONAGE_CONVERSATION_ID): each simulated WeChat user gets a conversation of their own, made by the
 * bridge on first contact; the agent user is created through the emulator's API like a user would
 * with curl, and joins a conversation when the console opens it. PUBLIC_URL is the sandbox's own
 * address, so inbound images carry a `media_url` the agent pane can show. Nothing here reaches
 * beyond 127.0.0.1.
 */
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import type { Config } from '../config';
import { createLogger, type Logger } from '../logger';
import { startBridge, type RunningBridge } from '../server';
import { decodeEncodingAesKey } from '../wechat/crypto';
import { callbackPathOf, DEFAULT_ACCOUNT_ID } from '../accounts';
import { conversationNameFor } from '../bridge/to-vonage/conversation-routing';
import { createConsoleRoutes } from './console-routes';
import { startDemoBot, type DemoBot } from './demo-bot';
import { startWeChatApiHost } from './wechat/api-host';
import { createTrafficRecorder, type TrafficRecorder } from './traffic';
import { startVonageEmulator, type VonageEmulator } from './vonage/emulator';
import { startWeChatPlatform, type WeChatPlatform } from './wechat/platform';

export interface SandboxOptions {
  /** The console's and the bridge's port; default 3000, 0 picks a free one. */
  port?: number;
  /** Default 127.0.0.1: the sandbox has no credentials worth stealing, but stays on this machine. */
  host?: string;
  /** The bridge's logger; default errors only, to stdout. */
  logger?: Logger;
  /** Simulated users who follow the account at start (nicknames); default one. */
  users?: string[];
  /** Whether the demo bot answers every message at start; default off (the console switches it). */
  demoBot?: boolean;
}

export interface Sandbox {
  /** The console, e.g. `http://localhost:3000/`. */
  url: string;
  port: number;
  bridge: RunningBridge;
  /** The `default` account's platform (the first of `accounts`). */
  weChat: WeChatPlatform;
  /** Both Official Accounts: `default` at /weChatEvent (plain mode) and `second` at /weChatEvent/second (safe mode). */
  accounts: Array<{ id: string; weChat: WeChatPlatform }>;
  vonage: VonageEmulator;
  traffic: TrafficRecorder;
  /** The agent that answers every message within a second (demo-bot.ts). */
  demoBot: DemoBot;
  /** The conversation the bridge made for a WeChat user (`wechat:<openid>`), once they wrote or followed. */
  conversationOf(openid: string): string | undefined;
  /** The Vonage user the console's agent pane acts as. */
  agent: { name: string; displayName: string };
  /** The throwaway SQLite file (deleted by `stop`). */
  databasePath: string;
  /** Stops everything and deletes the store. */
  stop(): Promise<void>;
}

const AGENT = { name: 'alex', displayName: 'Agent Alex' };
export const SECOND_ACCOUNT_ID = 'second';
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const randomText = (length: number) => Array.from({ length }, () => ALPHANUMERIC[crypto.randomInt(ALPHANUMERIC.length)]).join('');

/** A port that was free a moment ago: PUBLIC_URL must name the port before the bridge listens. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const logger = options.logger ?? createLogger({ level: 'error' });
  const host = options.host ?? '127.0.0.1';
  const traffic = createTrafficRecorder({ keep: 1000 });

  const newCredentials = () => ({
    appId: `wx${crypto.randomBytes(8).toString('hex')}`,
    appSecret: crypto.randomBytes(16).toString('hex'),
    token: randomText(32),
    encodingAesKey: randomText(43),
  });
  const weChatCredentials = newCredentials();
  // A second Official Account on the same bridge (docs/accounts.md): its callback is /weChatEvent/second.
  const secondCredentials = newCredentials();
  const vonageApplicationId = crypto.randomUUID();
  const signatureSecret = crypto.randomBytes(24).toString('base64url');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });

  // Stopped in reverse order: the console's streams, the bridge (so that its worker does not retry
  // against closed ports), the emulators, then the store's files.
  const started: Array<() => Promise<void>> = [];
  const cleanUp = async () => {
    for (const stop of started.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    const dir = mkdtempSync(path.join(tmpdir(), 'wechat-bridge-sandbox-'));
    started.push(async () => rmSync(dir, { recursive: true, force: true }));
    const databasePath = path.join(dir, 'bridge.db');

    const weChat = await startWeChatPlatform({
      appId: weChatCredentials.appId,
      appSecret: weChatCredentials.appSecret,
      traffic,
      callerOf: (req) => (req.headers['x-sandbox-caller'] === 'console' ? 'sandbox console' : 'bridge'),
    });
    started.push(() => weChat.close());
    const secondWeChat = await startWeChatPlatform({
      appId: secondCredentials.appId,
      appSecret: secondCredentials.appSecret,
      traffic,
      callerOf: (req) => (req.headers['x-sandbox-caller'] === 'console' ? 'sandbox console' : 'bridge'),
    });
    started.push(() => secondWeChat.close());
    // One API host for both accounts, as api.weixin.qq.com is: requests go to the account they belong to.
    const weChatApi = await startWeChatApiHost([
      { appId: weChatCredentials.appId, platform: weChat },
      { appId: secondCredentials.appId, platform: secondWeChat },
    ]);
    started.push(() => weChatApi.close());
    const vonage = await startVonageEmulator({
      publicKeyPem: publicKey,
      applicationId: vonageApplicationId,
      signatureSecret,
      traffic,
      callerOf: (claims) =>
        claims['sandbox_caller'] === 'setup' ? 'sandbox setup' : typeof claims.sub === 'string' ? `agent (${claims.sub})` : 'bridge',
    });
    started.push(() => vonage.close());

    // As a user would with curl and an application JWT. `sandbox_caller` only labels these calls in
    // the traffic panel (Vonage ignores claims it does not know).
    const setupToken = () => {
      const iat = Math.floor(Date.now() / 1000);
      return jwt.sign(
        { application_id: vonageApplicationId, iat, jti: crypto.randomUUID(), exp: iat + 300, sandbox_caller: 'setup' },
        privateKey,
        { algorithm: 'RS256' },
      );
    };
    const vonageApi = async (method: string, apiPath: string, body: unknown) => {
      const response = await fetch(`${vonage.baseUrl}${apiPath}`, {
        method,
        headers: { authorization: `Bearer ${setupToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const json = (await response.json()) as Record<string, unknown>;
      if (!response.ok) throw new Error(`sandbox setup: ${method} ${apiPath} answered ${response.status} ${String(json.code)}`);
      return json;
    };
    const mintAgentToken = () => {
      const iat = Math.floor(Date.now() / 1000);
      // A Client SDK user token, as an application's backend mints it for its users.
      return jwt.sign(
        {
          application_id: vonageApplicationId,
          iat,
          jti: crypto.randomUUID(),
          exp: iat + 3600,
          sub: AGENT.name,
          acl: { paths: { '/*/users/**': {}, '/*/conversations/**': {}, '/*/sessions/**': {} } },
        },
        privateKey,
        { algorithm: 'RS256' },
      );
    };

    const demoBot = startDemoBot({
      vonage,
      enabled: options.demoBot === true,
      logger: logger.child({ component: 'sandbox-demo-bot' }),
      postEvent: async (conversationId, event) => {
        await vonageApi('POST', `/conversations/${encodeURIComponent(conversationId)}/events`, event);
      },
    });
    started.push(async () => demoBot.stop());

    const consoleRoutes = createConsoleRoutes({
      demoBot,
      weChat,
      vonage,
      traffic,
      agent: AGENT,
      mintAgentToken,
      weChatCredentials: { appId: weChatCredentials.appId, appSecret: weChatCredentials.appSecret },
      accounts: [
        { id: DEFAULT_ACCOUNT_ID, label: 'Sandbox Official Account', weChat, weChatCredentials: { appId: weChatCredentials.appId, appSecret: weChatCredentials.appSecret } },
        { id: SECOND_ACCOUNT_ID, label: 'Second Official Account', weChat: secondWeChat, weChatCredentials: { appId: secondCredentials.appId, appSecret: secondCredentials.appSecret } },
      ],
      logger: logger.child({ component: 'sandbox-console' }),
    });

    const loopback = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    const port = options.port === 0 ? await freePort(host) : (options.port ?? 3000);
    const config: Config = {
      port,
      host,
      // The sandbox's own address: media links open in the console (which is served from it).
      publicUrl: `http://${loopback === '127.0.0.1' ? 'localhost' : loopback}:${port}`,
      weChat: {
        token: weChatCredentials.token,
        appId: weChatCredentials.appId,
        appSecret: weChatCredentials.appSecret,
        aesKeys: [decodeEncodingAesKey(weChatCredentials.encodingAesKey)],
        apiBaseUrl: weChatApi.baseUrl,
      },
      accounts: [
        {
          id: DEFAULT_ACCOUNT_ID,
          token: weChatCredentials.token,
          appId: weChatCredentials.appId,
          appSecret: weChatCredentials.appSecret,
          aesKeys: [decodeEncodingAesKey(weChatCredentials.encodingAesKey)],
          conversationId: undefined,
        },
        {
          id: SECOND_ACCOUNT_ID,
          token: secondCredentials.token,
          appId: secondCredentials.appId,
          appSecret: secondCredentials.appSecret,
          aesKeys: [decodeEncodingAesKey(secondCredentials.encodingAesKey)],
          conversationId: undefined,
        },
      ],
      vonage: {
        applicationId: vonageApplicationId,
        privateKeyPem: privateKey,
        apiBaseUrl: vonage.baseUrl,
        // Per-user mode: a conversation per simulated WeChat user.
        conversationId: undefined,
        signatureSecret,
      },
      media: {
        cacheDir: path.join(dir, 'media'),
        // Everything in the sandbox is on loopback, agents' media_url included.
        allowPrivateNetworks: true,
      },
      // Auto: customer-service replies while the account is verified; switched to "unverified
      // subscription account" (48001), each user's replies ride on the answers to their pushes.
      replies: { mode: 'auto', holdingText: '回复 1 获取答复', replyTtlMs: 24 * 60 * 60 * 1000 },
      databaseUrl: `sqlite:${databasePath}`,
      logLevel: logger.level as Config['logLevel'],
    };
    const bridge = await startBridge(config, logger, { extraRoutes: (app) => consoleRoutes.mount(app) });
    started.push(() => bridge.stop());
    // Open console streams would keep the bridge's server from closing.
    started.push(async () => consoleRoutes.close());

    const bridgeUrl = `http://${loopback}:${bridge.port}`;
    // The two dashboards: Vonage's RTC event_url, WeChat's server configuration (URL, Token, key).
    vonage.setRtcEventUrl(`${bridgeUrl}/rtcEvent`);
    weChat.connect({ url: `${bridgeUrl}/weChatEvent`, token: weChatCredentials.token, mode: 'plain', encodingAesKey: weChatCredentials.encodingAesKey });
    secondWeChat.connect({
      url: `${bridgeUrl}${callbackPathOf(SECOND_ACCOUNT_ID)}`,
      token: secondCredentials.token,
      mode: 'safe',
      encodingAesKey: secondCredentials.encodingAesKey,
    });

    await vonageApi('POST', '/users', { name: AGENT.name, display_name: AGENT.displayName });
    for (const nickname of options.users ?? ['Li Wei']) {
      const user = await weChat.addUser({ nickname, follow: false });
      void weChat.follow(user.openid).catch(() => undefined);
    }
    const secondUser = await secondWeChat.addUser({ nickname: 'Zhang Min', follow: false });
    void secondWeChat.follow(secondUser.openid).catch(() => undefined);

    let stopping: Promise<void> | undefined;
    return {
      url: `http://localhost:${bridge.port}/`,
      port: bridge.port,
      bridge,
      weChat,
      accounts: [
        { id: DEFAULT_ACCOUNT_ID, weChat },
        { id: SECOND_ACCOUNT_ID, weChat: secondWeChat },
      ],
      vonage,
      traffic,
      demoBot,
      conversationOf: (openid) => {
        const names = [DEFAULT_ACCOUNT_ID, SECOND_ACCOUNT_ID].map((id) => conversationNameFor(openid, id));
        return vonage.conversations().find((c) => names.includes(c.name))?.id;
      },
      agent: AGENT,
      databasePath,
      stop: () => (stopping ??= cleanUp()),
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
