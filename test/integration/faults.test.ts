/**
 * Fault injection, both directions at once, against the real process (`node dist/main.js`):
 *
 * - Vonage answers 503, 429 with and without Retry-After, answers too slowly (past the client's
 *   10-second timeout), and drops connections;
 * - WeChat answers errcode -1, HTTP 503, answers too slowly after accepting the message, and drops
 *   connections;
 * - the bridge is killed with SIGKILL at random moments while WeChat users write and agents reply,
 *   and started again at once; the first kill while it waits for its WeChat access token.
 *
 * The senders behave like WeChat and Vonage: each user's next message goes only after the previous
 * one was acknowledged, and anything not acknowledged is sent again. Then the test counts what the
 * fakes received: every acknowledged message reached the other side exactly once (outbound: at most
 * once, and exactly once when its status says delivered), in order per user, and every outbound
 * event got exactly one status. A status `uncertain` is only right when the request did reach WeChat
 * (an answer lost after it); one for a message WeChat never saw is counted as wrongly uncertain.
 *
 * Both conversation modes: a fixed VONAGE_CONVERSATION_ID, and one conversation per WeChat user
 * (agents then answer in the user's conversation without naming `to`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { startFakeVonage, type FakeVonage } from '../support/fake-vonage';
import { startFakeWeChat, type FakeWeChat } from '../support/fake-wechat';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';
import { pushToBridge } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const USERS = 6;
const INBOUND_PER_USER = 12;
const OUTBOUND_PER_USER = 5;
const KILLS = 3;
const SEND_PATH = '/cgi-bin/message/custom/send';
const STABLE_TOKEN_PATH = '/cgi-bin/stable_token';

const openid = (user: number) => `oFaultUser${user}`;
const inboundId = (user: number, n: number) => String(700_000 + user * 1000 + n);
const outboundContent = (user: number, n: number) => `reply-${user}-${n}`;

type Mode = 'fixed conversation' | 'per-user conversations';

test.each<[Mode]>([['fixed conversation'], ['per-user conversations']])('%s: faults in both directions and SIGKILLs: nothing acknowledged lost, nothing doubled, nothing wrongly uncertain, order kept', async (mode) => {
  const perUser = mode === 'per-user conversations';
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-faults-'));
  const vonage: FakeVonage = await startFakeVonage({
    publicKeyPem: testKeyPair().publicKeyPem,
    applicationId: TEST_VONAGE_APP_ID,
    surface: perUser ? 'full' : 'events-only',
  });
  const weChat: FakeWeChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const { VONAGE_CONVERSATION_ID: fixedConversationId, ...perUserEnv } = bridgeProcessEnv({
    port,
    vonageBaseUrl: vonage.baseUrl,
    weChatBaseUrl: weChat.baseUrl,
    databaseUrl: `sqlite:${path.join(dir, 'bridge.db')}`,
  });
  const env = perUser ? perUserEnv : { ...perUserEnv, VONAGE_CONVERSATION_ID: fixedConversationId! };
  let bridge: ChildProcess | undefined;
  const startBridgeProcess = async () => {
    bridge = spawn(process.execPath, [BRIDGE_MAIN], { cwd: dir, env, stdio: 'ignore' });
    await waitForHttp(`${baseUrl}/healthz`);
  };

  try {
    await startBridgeProcess();

    // --- the senders ------------------------------------------------------------------------------
    const acknowledgedInbound = new Map<number, string[]>();
    const acknowledgedOutbound = new Map<number, Array<{ id: number; content: string }>>();
    const inboundSender = async (user: number) => {
      const done: string[] = [];
      acknowledgedInbound.set(user, done);
      for (let n = 0; n < INBOUND_PER_USER; n++) {
        const xml = TEXT.replace('fromUser', openid(user)).replace('1234567890123456', inboundId(user, n)).replace('this is a test', `in-${user}-${n}`);
        for (;;) {
          const answer = await pushToBridge(baseUrl, xml, { token: TEST_TOKEN }).catch(() => undefined);
          if (answer?.status === 200 && answer.text === 'success') break;
          await sleep(100); // WeChat pushes again
        }
        done.push(inboundId(user, n));
      }
    };
    /** Per-user mode: the user's conversation, once their first message has created it. */
    const conversationOf = async (user: number): Promise<string> => {
      for (;;) {
        const first = vonage.events.find((e) => e.type === 'custom:wechat:message' && e.body.direction === 'inbound' && e.body.from === openid(user));
        if (first) return first.conversationId;
        await sleep(50);
      }
    };
    const outboundSender = async (user: number) => {
      const done: Array<{ id: number; content: string }> = [];
      acknowledgedOutbound.set(user, done);
      const conversationId = perUser ? await conversationOf(user) : undefined;
      for (let n = 0; n < OUTBOUND_PER_USER; n++) {
        const event = perUser
          ? outboundMessage(undefined, { content: outboundContent(user, n) }, { conversation_id: conversationId })
          : outboundMessage(openid(user), { content: outboundContent(user, n) });
        for (;;) {
          const answer = await postRtcEvent(baseUrl, event).catch(() => undefined);
          if (answer?.status === 200) break;
          await sleep(100); // Vonage dispatches again
        }
        done.push({ id: Number(event.id), content: outboundContent(user, n) });
        await sleep(50);
      }
    };

    // --- the faults -------------------------------------------------------------------------------
    let loadRunning = true;
    const vonageFaults = [{ status: 503 }, { status: 429, retryAfter: '1' }, { status: 429 }, { reset: true as const }, { status: 500 }];
    const weChatFaults = [{ errcode: -1 }, { status: 503 }, { reset: true as const }, { errcode: -1 }];
    const injector = (async () => {
      let i = 0;
      // One slow answer each, early: past the 10-second client timeout, so it resolves during the run.
      vonage.script([{ delayMs: 10_500 }]);
      weChat.inject(SEND_PATH, [{ delayMs: 10_500 }]);
      // A fault every 400 ms for the first 16 (about 6 s of the load): enough that many jobs meet one,
      // few enough that exponential backoff (1 s doubling) drains the queue within the wait below.
      while (loadRunning && i < 16) {
        await sleep(400);
        vonage.script([vonageFaults[i % vonageFaults.length]!]);
        if (i % 2 === 0) weChat.inject(SEND_PATH, [weChatFaults[(i / 2) % weChatFaults.length]!]);
        i++;
      }
    })();
    // The run's first access token is held back, and the first SIGKILL lands while the bridge waits
    // for it: the outbound messages waiting with it were not sent, so they must be sent after the restart.
    weChat.inject(STABLE_TOKEN_PATH, [{ delayMs: 60_000 }]);
    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        if (k === 0) {
          await waitFor('the first token request', () => weChat.tokenFetches > 0, 30_000);
          await sleep(300);
        } else {
          await sleep(1200 + Math.floor(Math.random() * 1500));
        }
        bridge!.kill('SIGKILL');
        await new Promise((resolve) => bridge!.once('exit', resolve));
        await startBridgeProcess();
      }
    })();

    const senders = Promise.all([
      ...Array.from({ length: USERS }, (_, user) => inboundSender(user)),
      ...Array.from({ length: USERS }, (_, user) => outboundSender(user)),
    ]);
    await Promise.all([senders, killer]);
    loadRunning = false;
    await injector;

    // --- wait until everything acknowledged has come out the other side ---------------------------------
    const inboundEvents = () => vonage.events.filter((e) => e.type === 'custom:wechat:message' && e.body.direction === 'inbound');
    const statusEvents = () => vonage.events.filter((e) => e.type === 'custom:wechat:status');
    const totalOutbound = USERS * OUTBOUND_PER_USER;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const inboundIds = new Set(inboundEvents().map((e) => String(e.body.msg_id)));
      const refs = new Set(statusEvents().map((e) => String(e.body.ref_event_id)));
      const allIn = [...acknowledgedInbound.values()].every((ids) => ids.every((id) => inboundIds.has(id)));
      if (allIn && refs.size >= totalOutbound) break;
      await sleep(200);
    }
    await sleep(500); // anything still in flight would show up as a duplicate now

    // --- inbound: exactly once, in order per user ------------------------------------------------------
    for (let user = 0; user < USERS; user++) {
      const sequence = inboundEvents()
        .filter((e) => e.body.from === openid(user))
        .map((e) => String(e.body.msg_id));
      expect(sequence).toEqual(acknowledgedInbound.get(user));
    }

    // --- outbound: one status each; at most one send, exactly one when delivered; order kept ----------
    const statuses = statusEvents();
    const sendsOf = (content: string) => weChat.sent.filter((s) => s.path === SEND_PATH && (s.json as { text?: { content?: string } }).text?.content === content);
    /** Requests that reached WeChat with this message, whether it answered, dropped or delayed them. */
    const requestsOf = (content: string) => weChat.requests.filter((r) => r.path === SEND_PATH && r.rawBody.includes(`"content":"${content}"`));
    let delivered = 0;
    let uncertain = 0;
    const lost: string[] = [];
    const duplicated: string[] = [];
    const wronglyUncertain: string[] = [];
    for (let user = 0; user < USERS; user++) {
      const acknowledged = acknowledgedOutbound.get(user)!;
      expect(acknowledged).toHaveLength(OUTBOUND_PER_USER);
      for (const { id, content } of acknowledged) {
        const own = statuses.filter((e) => String(e.body.ref_event_id) === String(id));
        expect(own).toHaveLength(1);
        const sends = sendsOf(content).length;
        if (sends > 1) duplicated.push(content);
        if (own[0]!.body.status === 'delivered') {
          if (sends !== 1) lost.push(content);
          delivered++;
        } else {
          // Failed only where a send was genuinely uncertain (an answer lost after WeChat had it).
          expect(own[0]!.body.error_code).toBe('uncertain');
          if (requestsOf(content).length === 0) wronglyUncertain.push(content);
          uncertain++;
        }
      }
      const order = weChat.sent
        .filter((s) => s.path === SEND_PATH && (s.json as { touser?: string }).touser === openid(user))
        .map((s) => (s.json as { text: { content: string } }).text.content);
      expect(order).toEqual(acknowledged.map((a) => a.content).filter((c) => order.includes(c)));
    }
    expect({ lost, duplicated, wronglyUncertain }).toEqual({ lost: [], duplicated: [], wronglyUncertain: [] });
    expect(delivered).toBeGreaterThan(totalOutbound / 2);
    process.stdout.write(
      `faults (${mode}): ${USERS * INBOUND_PER_USER} inbound delivered once each; ${delivered}/${totalOutbound} outbound delivered, ` +
        `${uncertain} uncertain after reaching WeChat, 0 lost, 0 duplicated, 0 wrongly uncertain; ${KILLS} SIGKILLs\n`,
    );
  } finally {
    bridge?.kill('SIGKILL');
    await vonage.close();
    await weChat.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, 220_000);
