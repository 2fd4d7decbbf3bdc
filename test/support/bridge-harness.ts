/**
 * Starts the real bridge in this process against a fake Vonage and a fake WeChat API on loopback,
 * with its own temporary SQLite file, exactly as `npm start` wires it (through `startBridge`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Account } from '../../src/accounts';
import type { Config, RepliesConfig } from '../../src/config';
import type { WeChatMessageMode } from '../../src/wechat/inbound';
import { freePort } from './net';
import { createLogger } from '../../src/logger';
import { configuredSecrets, startBridge, type BridgeOptions, type RunningBridge } from '../../src/server';
import { aesKeyOf } from '../../src/sandbox/wechat/crypto';
import { startFakeVonage, type FakeVonage } from './fake-vonage';
import { startFakeWeChat, type FakeWeChat } from './fake-wechat';
import { testKeyPair } from './keys';

/** The official WXBizMsgCrypt sample key and AppID (test/fixtures/crypto-vectors.json). */
export const TEST_AES_KEY_TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
// Decoded by the WeChat emulator's code, not the bridge's: the tests' pushes must not share a bridge bug.
export const TEST_AES_KEY = aesKeyOf(TEST_AES_KEY_TEXT);
export const TEST_APP_ID = 'wx2c2769f8efd9abc2';
export const TEST_TOKEN = 'spamtest';
export const TEST_APP_SECRET = 'test-app-secret-0123456789abcdef';
export const TEST_VONAGE_APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
export const TEST_CONVERSATION_ID = 'CON-11111111-2222-3333-4444-555555555555';

export interface Harness {
  baseUrl: string;
  bridge: RunningBridge;
  vonage: FakeVonage;
  weChat: FakeWeChat;
  /** Every log line the bridge wrote, as text (to assert that no secret leaks). */
  logs: string[];
  dbPath: string;
  /** MEDIA_CACHE_DIR of this bridge. */
  mediaCacheDir: string;
  config: Config;
  close(): Promise<void>;
}

export function testConfig(overrides: {
  databaseUrl: string;
  vonageBaseUrl: string;
  aesKeys?: Buffer[];
  /** WECHAT_MESSAGE_MODES; by default what the keys allow. */
  messageModes?: WeChatMessageMode[];
  weChatBaseUrl?: string;
  signatureSecret?: string;
  previousSignatureSecret?: string;
  /** Per-user conversation mode: VONAGE_CONVERSATION_ID unset. */
  perUser?: boolean;
  /** VONAGE_CONVERSATION_ID in fixed mode; default TEST_CONVERSATION_ID. */
  conversationId?: string;
  publicUrl?: string;
  port?: number;
  mediaCacheDir?: string;
  /** Agents' media_url may be http on loopback (the tests' file servers). */
  allowPrivateMediaUrls?: boolean;
  /** WECHAT_REPLY_MODE and the passive-reply settings; default customer-service. */
  replies?: RepliesConfig;
}): Config {
  return {
    port: overrides.port ?? 0,
    host: '127.0.0.1',
    publicUrl: overrides.publicUrl,
    weChat: {
      token: TEST_TOKEN,
      appId: TEST_APP_ID,
      appSecret: TEST_APP_SECRET,
      aesKeys: overrides.aesKeys ?? [TEST_AES_KEY],
      ...(overrides.messageModes ? { messageModes: overrides.messageModes } : {}),
      apiBaseUrl: overrides.weChatBaseUrl ?? 'http://127.0.0.1:9',
    },
    vonage: {
      applicationId: TEST_VONAGE_APP_ID,
      privateKeyPem: testKeyPair().privateKeyPem,
      apiBaseUrl: overrides.vonageBaseUrl,
      conversationId: overrides.perUser ? undefined : (overrides.conversationId ?? TEST_CONVERSATION_ID),
      signatureSecret: overrides.signatureSecret,
      previousSignatureSecret: overrides.previousSignatureSecret,
    },
    media: {
      ...(overrides.mediaCacheDir !== undefined ? { cacheDir: overrides.mediaCacheDir } : {}),
      allowPrivateNetworks: overrides.allowPrivateMediaUrls === true,
    },
    ...(overrides.replies ? { replies: overrides.replies } : {}),
    databaseUrl: overrides.databaseUrl,
    logLevel: 'debug',
  };
}

export function captureLogs(): { lines: string[]; destination: Writable } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(String(chunk));
      callback();
    },
  });
  return { lines, destination };
}

export interface HarnessOptions {
  /** Shared fakes (closed by their owner); by default the harness starts and closes its own. */
  vonage?: FakeVonage;
  weChat?: FakeWeChat;
  aesKeys?: Buffer[];
  /** WECHAT_MESSAGE_MODES; by default what the keys allow. */
  messageModes?: WeChatMessageMode[];
  /** VONAGE_SIGNATURE_SECRET: when set, /rtcEvent accepts only signed requests. */
  signatureSecret?: string;
  /** VONAGE_PREVIOUS_SIGNATURE_SECRET: the secret being rotated out, still accepted. */
  previousSignatureSecret?: string;
  /**
   * Per-user conversation mode (VONAGE_CONVERSATION_ID unset). The harness's own fake Vonage then
   * serves the whole API (conversations, users, members); a shared one must have `surface: 'full'`.
   */
  perUser?: boolean;
  /** VONAGE_CONVERSATION_ID in fixed mode; default TEST_CONVERSATION_ID. */
  conversationId?: string;
  /** PUBLIC_URL: `self` for the bridge's own loopback address (so media links can be opened). */
  publicUrl?: string;
  /** Agents' media_url may be http on loopback (the tests' file servers). */
  allowPrivateMediaUrls?: boolean;
  /** A directory of a stopped harness (`keepDirectory`): its database and media cache are reused, as after a restart. */
  directory?: string;
  /** Leave the directory for a later harness instead of deleting it on close. */
  keepDirectory?: boolean;
  /** DATABASE_URL instead of the harness's own SQLite file (e.g. a shared PostgreSQL test database). */
  databaseUrl?: string;
  /** Several Official Accounts (as WECHAT_ACCOUNTS_FILE gives them); default the one `default` account. */
  accounts?: Account[];
  /** WECHAT_API_BASE_URL instead of the fake WeChat's (e.g. a WeChat API host serving several accounts' emulators). */
  weChatBaseUrl?: string;
  /** Passed to `startBridge` (e.g. a short acknowledgement budget). */
  bridgeOptions?: BridgeOptions;
  /** WECHAT_REPLY_MODE and the passive-reply settings; default customer-service. */
  replies?: RepliesConfig;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const vonage =
    options.vonage ??
    (await startFakeVonage({
      publicKeyPem: testKeyPair().publicKeyPem,
      applicationId: TEST_VONAGE_APP_ID,
      surface: options.perUser ? 'full' : 'events-only',
    }));
  const weChat = options.weChat ?? (await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET }));
  const dir = options.directory ?? mkdtempSync(path.join(tmpdir(), 'bridge-test-'));
  const dbPath = path.join(dir, 'bridge.db');
  const mediaCacheDir = path.join(dir, 'media');
  const { lines, destination } = captureLogs();
  // PUBLIC_URL must name the bridge's own port, so it is chosen before the bridge starts.
  const port = options.publicUrl === 'self' ? await freePort() : 0;
  const config = testConfig({
    databaseUrl: options.databaseUrl ?? `sqlite:${dbPath}`,
    vonageBaseUrl: vonage.baseUrl,
    weChatBaseUrl: options.weChatBaseUrl ?? weChat.baseUrl,
    aesKeys: options.aesKeys,
    messageModes: options.messageModes,
    signatureSecret: options.signatureSecret,
    previousSignatureSecret: options.previousSignatureSecret,
    perUser: options.perUser,
    conversationId: options.conversationId,
    port,
    publicUrl: options.publicUrl === 'self' ? `http://127.0.0.1:${port}` : options.publicUrl,
    mediaCacheDir,
    allowPrivateMediaUrls: options.allowPrivateMediaUrls,
    ...(options.replies ? { replies: options.replies } : {}),
  });
  if (options.accounts) config.accounts = options.accounts;
  const logger = createLogger({ level: 'debug', destination, secrets: configuredSecrets(config) });
  const bridge = await startBridge(config, logger, options.bridgeOptions);
  return {
    baseUrl: `http://127.0.0.1:${bridge.port}`,
    bridge,
    vonage,
    weChat,
    logs: lines,
    dbPath,
    mediaCacheDir,
    config,
    async close() {
      await bridge.stop();
      if (!options.vonage) await vonage.close();
      if (!options.weChat) await weChat.close();
      if (!options.keepDirectory) rmSync(dir, { recursive: true, force: true });
    },
  };
}
