/**
 * A bridge killed (SIGKILL) while it fetches the WeChat access token leaves the store's refresh lock
 * behind. The next process must not wait for it: on SQLite the lock is dropped at open (the file is
 * one process's), on PostgreSQL it is a short lease that only a live holder renews. Real processes
 * (`node dist/main.js`), a fake WeChat whose stable_token answer never comes before the kill.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { startFakeVonage } from '../support/fake-vonage';
import { startFakeWeChat } from '../support/fake-wechat';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { createTestDatabase } from '../support/postgres';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { waitFor } from '../support/wait';

/** The old lock lease was the request budget plus 5 s (15 s); a send after the restart must not wait for anything like it. */
const MAX_DELAY_AFTER_RESTART_MS = 6_000;

test.each([['SQLite'], ['PostgreSQL']])(
  '%s: a refresh lock left by a killed process does not hold up the next one',
  async (storeName) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bridge-token-lock-'));
    const db = storeName === 'PostgreSQL' ? await createTestDatabase('bridge_token_lock') : undefined;
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
    const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env = bridgeProcessEnv({
      port,
      vonageBaseUrl: vonage.baseUrl,
      weChatBaseUrl: weChat.baseUrl,
      databaseUrl: db?.url ?? `sqlite:${path.join(dir, 'bridge.db')}`,
    });
    let bridge: ChildProcess | undefined;
    const startBridgeProcess = async () => {
      bridge = spawn(process.execPath, [BRIDGE_MAIN], { cwd: dir, env, stdio: 'ignore' });
      await waitForHttp(`${baseUrl}/healthz`);
    };
    try {
      // The first token request is held: the bridge is inside its refresh, holding the lock, when killed.
      weChat.inject('/cgi-bin/stable_token', [{ delayMs: 60_000 }]);
      await startBridgeProcess();
      expect((await postRtcEvent(baseUrl, outboundMessage('oBeforeKill', { content: 'first' }))).status).toBe(200);
      await waitFor('the token request', () => weChat.tokenFetches >= 1 || weChat.tokenRequests.length >= 1, 10_000);
      bridge!.kill('SIGKILL');
      await new Promise((resolve) => bridge!.once('exit', resolve));

      await startBridgeProcess();
      const event = outboundMessage('oAfterKill', { content: 'second' });
      const postedAt = Date.now();
      expect((await postRtcEvent(baseUrl, event)).status).toBe(200);
      const status = await waitFor(
        'the status of the message sent after the restart',
        () => vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(event.id)),
        30_000,
      );
      const delayMs = Date.now() - postedAt;
      expect(status.body.status).toBe('delivered');
      expect(delayMs).toBeLessThan(MAX_DELAY_AFTER_RESTART_MS);
      process.stdout.write(`token lock after SIGKILL (${storeName}): the next send delivered in ${delayMs} ms\n`);
    } finally {
      bridge?.kill('SIGKILL');
      await vonage.close();
      await weChat.close();
      await db?.drop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
  60_000,
);
