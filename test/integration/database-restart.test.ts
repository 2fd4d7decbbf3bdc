/**
 * The database goes away during a run and comes back: a real PostgreSQL server (a private one,
 * started for this file, so that stopping it disturbs no other test) is shut down (`pg_ctl stop -m
 * fast`: every session is terminated) while WeChat messages keep arriving, then started again.
 *
 * While it is down the bridge must answer WeChat with a non-`success` status (so WeChat retries)
 * and `/readyz` must say so; afterwards it must recover by itself, without a restart, and every
 * message it ever acknowledged must reach Vonage, in order per user.
 *
 * Outbound: a message WeChat accepted while the database was down (its answer came during the
 * outage, so its status could not be stored yet) must still be reported `delivered`, not `uncertain`.
 */
import { createLogger } from '../../src/logger';
import { startBridge, type RunningBridge } from '../../src/server';
import { captureLogs, testConfig, TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { startFakeWeChat } from '../support/fake-wechat';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';
import { startFakeVonage, type FakeVonage } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { startPrivateCluster, type PrivateCluster } from '../support/postgres';
import { signedPush } from '../support/wechat-push';

const USERS = 10;
const PER_USER = 30;
const OUTAGE_AFTER_ACKS = 80;
const OUTAGE_MS = 1_500;

const openidOf = (user: number) => `oRestartUser${user}`;
const msgIdOf = (user: number, n: number) => String(6_000_000_000_000_000_000n + BigInt(user * 1000 + n));
const textXml = (user: number, n: number) =>
  `<xml><ToUserName><![CDATA[gh_restart]]></ToUserName><FromUserName><![CDATA[${openidOf(user)}]]></FromUserName>` +
  `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
  `<Content><![CDATA[m${n}]]></Content><MsgId>${msgIdOf(user, n)}</MsgId></xml>`;

describe('PostgreSQL restarted during a run', () => {
  let cluster: PrivateCluster;
  let vonage: FakeVonage;
  let bridge: RunningBridge | undefined;
  const logs = captureLogs();

  beforeAll(async () => {
    cluster = await startPrivateCluster();
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  }, 60_000);

  afterAll(async () => {
    await bridge?.stop();
    await vonage?.close();
    await cluster?.destroy();
  }, 60_000);

  test('no acknowledged message is lost; the bridge answers 503 while the database is down and recovers by itself', async () => {
    const logger = createLogger({ level: 'warn', destination: logs.destination });
    bridge = await startBridge(testConfig({ databaseUrl: cluster.url, vonageBaseUrl: vonage.baseUrl }), logger);
    const baseUrl = `http://127.0.0.1:${bridge.port}`;
    const readyz = async () => (await fetch(`${baseUrl}/readyz`)).status;
    expect(await readyz()).toBe(200);

    const acknowledged = new Set<string>();
    const refusedWhileDown: number[] = [];
    let down = false;
    let outage: Promise<void> | undefined;

    const outageThenRecovery = async () => {
      await cluster.stop();
      down = true;
      // Give the load a moment to hit the missing database, then look at readiness.
      await sleep(OUTAGE_MS / 2);
      expect(await readyz()).toBe(503);
      await sleep(OUTAGE_MS / 2);
      down = false;
      await cluster.start();
    };

    /** One user's messages in order; each pushed until answered `success`, as WeChat retries. */
    const user = async (index: number) => {
      for (let n = 0; n < PER_USER; n += 1) {
        for (let attempt = 1; ; attempt += 1) {
          const push = signedPush(textXml(index, n), { token: TEST_TOKEN });
          const response = await fetch(`${baseUrl}${push.path}`, {
            method: 'POST',
            headers: { 'content-type': 'text/xml' },
            body: push.body,
            signal: AbortSignal.timeout(5_000),
          });
          const text = await response.text();
          if (response.status === 200 && text === 'success') break;
          expect(response.status).toBe(503);
          if (down) refusedWhileDown.push(response.status);
          if (attempt > 200) throw new Error('never acknowledged after the database came back');
          await sleep(50);
        }
        acknowledged.add(msgIdOf(index, n));
        if (acknowledged.size === OUTAGE_AFTER_ACKS) outage = outageThenRecovery();
      }
    };
    await Promise.all(Array.from({ length: USERS }, (_, index) => user(index)));
    await outage;

    // While the database was down, WeChat was told to retry (never `success`).
    expect(refusedWhileDown.length).toBeGreaterThan(0);
    // Recovered by itself.
    expect(await readyz()).toBe(200);
    expect(acknowledged.size).toBe(USERS * PER_USER);

    // Every acknowledged message reaches Vonage, in order per user.
    const deadline = Date.now() + 40_000;
    const delivered = () => new Set(vonage.events.map((event) => String(event.body.msg_id)));
    while ([...acknowledged].some((msgId) => !delivered().has(msgId))) {
      if (Date.now() > deadline) {
        const missing = [...acknowledged].filter((msgId) => !delivered().has(msgId));
        throw new Error(`${missing.length} acknowledged messages never reached Vonage`);
      }
      await sleep(100);
    }
    for (let index = 0; index < USERS; index += 1) {
      const sequence = vonage.events.filter((event) => event.body.from === openidOf(index)).map((event) => String(event.body.msg_id));
      expect(sequence).toEqual(Array.from({ length: PER_USER }, (_, n) => msgIdOf(index, n)));
    }

    process.stdout.write(
      `database-restart: ${acknowledged.size} acknowledged, ${refusedWhileDown.length} answers of 503 while the database was down, ` +
        `${vonage.events.length} events delivered\n`,
    );

    // The lost connections were noticed and logged, not thrown: by the store step, or by the replay
    // guard's look-up just before it, whichever reached the database first while it was down.
    const text = logs.lines.join('');
    expect(text).toMatch(/could not store, answered 503|store too slow|could not check the WeChat push signature for reuse, answered 503/);
    expect(text).not.toContain('uncaught');
  }, 90_000);

  test('outbound messages WeChat accepted while the database was down are reported delivered, not uncertain', async () => {
    const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
    const logger = createLogger({ level: 'warn', destination: logs.destination });
    const outboundBridge = await startBridge(
      testConfig({ databaseUrl: cluster.url, vonageBaseUrl: vonage.baseUrl, weChatBaseUrl: weChat.baseUrl }),
      logger,
    );
    try {
      const baseUrl = `http://127.0.0.1:${outboundBridge.port}`;
      const statusOf = (id: unknown) => vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(id));
      // A first message, so that the access token is fetched and stored before the outage.
      const first = outboundMessage('oRestartOut0', { content: 'before' });
      expect((await postRtcEvent(baseUrl, first)).status).toBe(200);
      await waitFor('the first status', () => statusOf(first.id), 10_000);

      // WeChat takes these and answers only once the database is gone.
      const SLOW_ANSWER_MS = 2_500;
      const events = [1, 2, 3].map((user) => outboundMessage(`oRestartOut${user}`, { content: `during-${user}` }));
      weChat.inject('/cgi-bin/message/custom/send', events.map(() => ({ delayMs: SLOW_ANSWER_MS })));
      for (const event of events) expect((await postRtcEvent(baseUrl, event)).status).toBe(200);
      await waitFor('WeChat to have the messages', () => weChat.sent.length >= 1 + events.length, 10_000);
      await cluster.stop();
      await sleep(SLOW_ANSWER_MS + 1_000);
      await cluster.start();

      const statuses = await waitFor('every status', () => {
        const found = events.map((event) => statusOf(event.id));
        return found.every(Boolean) ? found : undefined;
      }, 60_000);
      expect(statuses.map((status) => status!.body.status)).toEqual(['delivered', 'delivered', 'delivered']);
      for (const event of events) {
        expect(vonage.events.filter((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(event.id))).toHaveLength(1);
      }
      expect(weChat.sent).toHaveLength(1 + events.length);
    } finally {
      await outboundBridge.stop();
      await weChat.close();
    }
  }, 90_000);
});
