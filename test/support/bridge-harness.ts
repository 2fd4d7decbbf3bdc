/**
 * Starts the real bridge in this process against a fake Vonage and a fake WeChat API on loopback,
 * with its own temporary SQLite file, exactly as `npm start` wires it (through `startBridge`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Config } from '../../src/config';
import { createLogger } from '../../src/logger';
import { startBridge, type RunningBridge } from '../../src/server';
import { decodeEncodingAesKey } from '../../src/wechat/crypto';
import { startFakeVonage, type FakeVonage } from './fake-vonage';
import { startFakeWeChat, type FakeWeChat } from './fake-wechat';
import { testKeyPair } from './keys';

/** The official WXBizMsgCrypt sample key and AppID (test/fixtures/crypto-vectors.json). */
export const TEST_AES_KEY_TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
export const TEST_AES_KEY = decodeEncodingAesKey(TEST_AES_KEY_TEXT);
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
  close(): Promise<void>;
}

export function testConfig(overrides: {
  databaseUrl: string;
  vonageBaseUrl: string;
  aesKeys?: Buffer[];
  weChatBaseUrl?: string;
  signatureSecret?: string;
}): Config {
  return {
    port: 0,
    host: '127.0.0.1',
    publicUrl: undefined,
    weChat: {
      token: TEST_TOKEN,
      appId: TEST_APP_ID,
      appSecret: TEST_APP_SECRET,
      aesKeys: overrides.aesKeys ?? [TEST_AES_KEY],
      apiBaseUrl: overrides.weChatBaseUrl ?? 'http://127.0.0.1:9',
    },
    vonage: {
      applicationId: TEST_VONAGE_APP_ID,
      privateKeyPem: testKeyPair().privateKeyPem,
      apiBaseUrl: overrides.vonageBaseUrl,
      conversationId: TEST_CONVERSATION_ID,
      signatureSecret: overrides.signatureSecret,
    },
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
  /** VONAGE_SIGNATURE_SECRET: when set, /rtcEvent accepts only signed requests. */
  signatureSecret?: string;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const vonage =
    options.vonage ?? (await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID }));
  const weChat = options.weChat ?? (await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET }));
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-test-'));
  const dbPath = path.join(dir, 'bridge.db');
  const { lines, destination } = captureLogs();
  const logger = createLogger({ level: 'debug', destination });
  const config = testConfig({
    databaseUrl: `sqlite:${dbPath}`,
    vonageBaseUrl: vonage.baseUrl,
    weChatBaseUrl: weChat.baseUrl,
    aesKeys: options.aesKeys,
    signatureSecret: options.signatureSecret,
  });
  const bridge = await startBridge(config, logger);
  return {
    baseUrl: `http://127.0.0.1:${bridge.port}`,
    bridge,
    vonage,
    weChat,
    logs: lines,
    dbPath,
    async close() {
      await bridge.stop();
      if (!options.vonage) await vonage.close();
      if (!options.weChat) await weChat.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
