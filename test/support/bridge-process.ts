/**
 * The environment for the real bridge process (`node dist/main.js`, built by `npm test`) in the
 * process tests: the test credentials, pointed at the given fakes and database.
 */
import path from 'node:path';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_CONVERSATION_ID, TEST_TOKEN, TEST_VONAGE_APP_ID } from './bridge-harness';
import { testKeyPair } from './keys';

export const BRIDGE_MAIN = path.join(__dirname, '../../dist/main.js');

export function bridgeProcessEnv(o: {
  port: number;
  vonageBaseUrl: string;
  databaseUrl: string;
  weChatBaseUrl?: string;
  logLevel?: string;
}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    PORT: String(o.port),
    HOST: '127.0.0.1',
    WECHAT_TOKEN: TEST_TOKEN,
    WECHAT_APP_ID: TEST_APP_ID,
    WECHAT_APP_SECRET: TEST_APP_SECRET,
    ...(o.weChatBaseUrl === undefined ? {} : { WECHAT_API_BASE_URL: o.weChatBaseUrl }),
    VONAGE_APPLICATION_ID: TEST_VONAGE_APP_ID,
    VONAGE_PRIVATE_KEY: testKeyPair().privateKeyPem,
    VONAGE_CONVERSATION_ID: TEST_CONVERSATION_ID,
    VONAGE_API_BASE_URL: o.vonageBaseUrl,
    DATABASE_URL: o.databaseUrl,
    LOG_LEVEL: o.logLevel ?? 'warn',
  };
}
