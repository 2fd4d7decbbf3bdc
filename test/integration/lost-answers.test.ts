/**
 * Vonage creates the event but its answer never reaches the bridge (the connection drops after the
 * commit), for every third event, while many WeChat users write at once: in both conversation modes
 * every message ends up in Vonage exactly once. The retry of a job whose answer was lost finds its
 * own event among those created after the newest id it knew before posting.
 */
import * as crypto from 'node:crypto';
import { startHarness, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { pushToBridge } from '../support/wechat-push';
import { sleep, waitFor } from '../support/wait';

const ACCOUNT = 'gh_3f2a1b4c5d6e';
let nextMsgId = 25_000_000_000_000_000n;

const textXml = (openid: string, content: string, msgId: string) =>
  `<xml><ToUserName><![CDATA[${ACCOUNT}]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
  `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
  `<Content><![CDATA[${content}]]></Content><MsgId>${msgId}</MsgId></xml>`;

describe.each([
  ['fixed conversation', false],
  ['a conversation per user', true],
])('answers lost after Vonage committed the event (%s)', (_mode, perUser) => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({ perUser });
  });
  afterAll(() => harness.close());

  test('every message is in Vonage exactly once', async () => {
    const users = Array.from({ length: 8 }, () => `o${crypto.randomBytes(20).toString('base64url').slice(0, 27)}`);
    const perUserMessages = 5;
    const sent: string[] = [];
    harness.vonage.loseEventAnswers(3);
    await Promise.all(
      users.map(async (user) => {
        for (let n = 0; n < perUserMessages; n++) {
          const msgId = String((nextMsgId += 1n));
          sent.push(msgId);
          const answer = await pushToBridge(harness.baseUrl, textXml(user, `message ${n}`, msgId), { token: TEST_TOKEN });
          expect(answer.status).toBe(200);
        }
      }),
    );
    const created = () => harness.vonage.events.filter((e) => e.type === 'custom:wechat:message' && sent.includes(String(e.body.msg_id)));
    await waitFor('every message in Vonage', () => new Set(created().map((e) => e.body.msg_id)).size === sent.length, 30_000);
    // Retries still pending would show up as duplicates: wait for the queue to drain.
    const deadline = Date.now() + 30_000;
    while (Object.values((await harness.bridge.store.stats()).depth).some((n) => n > 0)) {
      if (Date.now() > deadline) throw new Error('the queue did not drain');
      await sleep(50);
    }
    await sleep(500);
    harness.vonage.loseEventAnswers(0);
    const counts = new Map<string, number>();
    for (const event of created()) counts.set(String(event.body.msg_id), (counts.get(String(event.body.msg_id)) ?? 0) + 1);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(counts.size).toBe(sent.length);
    // Answers really were lost.
    expect(harness.vonage.traffic.recent(100_000).filter((t) => t.error?.includes('answer lost')).length).toBeGreaterThan(5);
  }, 90_000);
});
