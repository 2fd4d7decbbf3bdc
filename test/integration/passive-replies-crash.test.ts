/**
 * A crash while a push is held, with the real bridge process (`node dist/main.js`, built by
 * `npm test`) in passive-reply mode: SIGKILL while it holds WeChat's request, a new process on the
 * same database and port, and WeChat's next delivery of the same push. Nothing is lost: the message
 * reached Vonage once, and the reply (queued before or after the crash) answers the redelivery.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { userActionXml } from '../../src/sandbox/wechat/messages';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { startFakeVonage } from '../support/fake-vonage';
import { startFakeWeChat } from '../support/fake-wechat';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { waitFor } from '../support/wait';

test('SIGKILL while holding a push loses neither the message nor the reply', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-passive-crash-'));
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...bridgeProcessEnv({ port, vonageBaseUrl: vonage.baseUrl, weChatBaseUrl: weChat.baseUrl, databaseUrl: `sqlite:${path.join(dir, 'bridge.db')}` }),
    WECHAT_REPLY_MODE: 'passive',
  };
  const start = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [BRIDGE_MAIN], { cwd: dir, env, stdio: 'ignore' });
    await waitForHttp(`${baseUrl}/healthz`);
    return child;
  };
  let bridge: ChildProcess | undefined;
  try {
    bridge = await start();
    weChat.connect({ url: `${baseUrl}/weChatEvent`, token: TEST_TOKEN });
    const openid = 'oPassiveCrash0001';
    const xml = userActionXml(
      { kind: 'text', content: 'are you there?' },
      { toUserName: weChat.accountId, fromUserName: openid, createTime: Math.floor(Date.now() / 1000), msgId: '8200000000000000001' },
    );
    const pushed = weChat.pushXml(xml);
    const inbound = () => vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.from === openid);
    await waitFor('the message at Vonage', () => inbound().length === 1);

    // The bridge holds WeChat's request, waiting for a reply: it dies.
    const exited = once(bridge, 'exit');
    bridge.kill('SIGKILL');
    await exited;
    bridge = await start();
    const reply = outboundMessage(openid, { content: 'here, after a restart' });
    expect((await postRtcEvent(baseUrl, reply)).status).toBe(200);

    const result = await pushed;
    expect(result.deliveries.length).toBeGreaterThanOrEqual(2);
    expect(result.deliveries[0]!.status).toBeUndefined(); // the connection died with the process
    expect(result.reply?.text).toBe('here, after a restart');
    expect(inbound()).toHaveLength(1);
    const status = await waitFor('the status', () =>
      vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(reply.id))?.body,
    );
    expect(status).toMatchObject({ status: 'delivered', via: 'passive' });
  } finally {
    bridge?.kill('SIGKILL');
    await weChat.close();
    await vonage.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, 40_000);
