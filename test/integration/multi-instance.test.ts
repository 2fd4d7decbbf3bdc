/**
 * Three bridge processes (`node dist/main.js`, built by `npm test`) on one PostgreSQL database,
 * behind a round-robin client, with a fake Vonage and a fake WeChat API on loopback:
 *
 * 1. 30 outbound messages posted to all three instances at once: every instance needs the WeChat
 *    access token at the same moment, and exactly one fetches it.
 * 2. 2,000 WeChat messages from 50 users (each user's next message only after the previous one was
 *    answered, as WeChat does). Every fifth message is also sent to a second instance at the same
 *    time (a WeChat retry landing elsewhere), and every failed or non-`success` answer is retried on
 *    the next instance. Half-way through, one instance is killed with SIGKILL.
 *
 * Then every message must have reached Vonage, in order per user, and exactly once except where a log
 * line flagged a run whose effect was unknown (a run taken over, a post unanswered in time). The hard case is a job
 * the killed instance had already posted to Vonage but not yet recorded as done: the instance that
 * takes it over after the lease runs it flagged `interrupted` (its log says so), and the
 * deliver-to-vonage handler first looks for its own event in the conversation before posting again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { startFakeVonage, type FakeVonage } from '../support/fake-vonage';
import { startFakeWeChat, type FakeWeChat } from '../support/fake-wechat';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { createTestDatabase, type TestDatabase } from '../support/postgres';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { signedPush } from '../support/wechat-push';
import { sleep } from '../support/wait';

const INSTANCES = 3;
const USERS = 50;
const PER_USER = 40;
const TOTAL = USERS * PER_USER;
const OUTBOUND = 30;
const INTERRUPTED_LOG = 'job runs again after a run that recorded no outcome';
// A live instance found its run's lease gone (renewals late on an overloaded machine).
const LEASE_LOST_LOGS = ['job lease lost while running', 'job lease expired while running'];

interface Instance {
  index: number;
  baseUrl: string;
  child: ChildProcess;
  exited: Promise<void>;
  logLines: () => Array<Record<string, unknown>>;
  alive: boolean;
}

const openidOf = (user: number) => `oMultiUser${String(user).padStart(2, '0')}`;
const msgIdOf = (user: number, n: number) => String(7_000_000_000_000_000_000n + BigInt(user * 1000 + n));
const textXml = (user: number, n: number) =>
  `<xml><ToUserName><![CDATA[gh_multi]]></ToUserName><FromUserName><![CDATA[${openidOf(user)}]]></FromUserName>` +
  `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
  `<Content><![CDATA[m${n}]]></Content><MsgId>${msgIdOf(user, n)}</MsgId></xml>`;

describe('three instances on one PostgreSQL database', () => {
  let db: TestDatabase;
  let vonage: FakeVonage;
  let weChat: FakeWeChat;
  const instances: Instance[] = [];

  beforeAll(async () => {
    db = await createTestDatabase('bridge_multi');
    vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
    weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
  });

  afterAll(async () => {
    await Promise.all(
      instances.map(async (instance) => {
        if (instance.child.exitCode !== null || instance.child.signalCode !== null) return;
        instance.child.kill('SIGTERM');
        const forced = setTimeout(() => instance.child.kill('SIGKILL'), 10_000);
        await instance.exited;
        clearTimeout(forced);
      }),
    );
    await vonage?.close();
    await weChat?.close();
    await db?.drop();
  });

  async function startInstance(index: number): Promise<Instance> {
    const port = await freePort();
    let output = '';
    const child = spawn(process.execPath, [BRIDGE_MAIN], {
      env: bridgeProcessEnv({ port, vonageBaseUrl: vonage.baseUrl, weChatBaseUrl: weChat.baseUrl, databaseUrl: db.url }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const instance: Instance = {
      index,
      baseUrl: `http://127.0.0.1:${port}`,
      child,
      exited,
      alive: true,
      logLines: () =>
        output
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as Record<string, unknown>),
    };
    instances.push(instance);
    return instance;
  }

  /** The load balancer: the next live instance in turn; an instance that refuses connections is taken out. */
  let turn = 0;
  function nextInstance(exclude?: Instance): Instance {
    for (let tries = 0; tries < INSTANCES * 2; tries += 1) {
      const candidate = instances[turn++ % instances.length]!;
      if (candidate.alive && candidate !== exclude) return candidate;
    }
    throw new Error('no live instance left');
  }

  /** Pushes one message the way WeChat does: until some instance answers `success` (each try waits at most 5 s). */
  async function pushUntilAcknowledged(xml: string, first?: Instance): Promise<void> {
    let instance = first ?? nextInstance();
    for (let attempt = 1; ; attempt += 1) {
      const push = signedPush(xml, { token: TEST_TOKEN });
      try {
        const response = await fetch(`${instance.baseUrl}${push.path}`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml' },
          body: push.body,
          signal: AbortSignal.timeout(5_000),
        });
        const text = await response.text();
        if (response.status === 200 && text === 'success') return;
      } catch {
        // Refused, reset or timed out: try the next instance. One whose process is gone leaves the rotation.
        if (instance.child.exitCode !== null || instance.child.signalCode !== null) instance.alive = false;
      }
      if (attempt >= 30) throw new Error(`message never acknowledged after ${attempt} tries`);
      await sleep(20);
      instance = nextInstance(instance);
    }
  }

  async function waitUntil(what: string, condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  test(
    `${TOTAL} messages from ${USERS} users, retries across instances, one instance SIGKILLed: each delivered once (repeats only as flagged), in order; one token fetch`,
    async () => {
      // All three start at once: the schema migration runs once, under its lock.
      await Promise.all(Array.from({ length: INSTANCES }, (_, index) => startInstance(index)));
      await Promise.all(instances.map((instance) => waitForHttp(`${instance.baseUrl}/readyz`)));
      for (const instance of instances) expect((await fetch(`${instance.baseUrl}/readyz`)).status).toBe(200);

      // 1. Outbound: every instance needs the access token at once.
      const outbound = Array.from({ length: OUTBOUND }, (_, n) => outboundMessage(`oMultiOut${n}`, { content: `out ${n}` }));
      const posted = await Promise.all(outbound.map((event, n) => postRtcEvent(instances[n % INSTANCES]!.baseUrl, event)));
      expect(posted.every((answer) => answer.status === 200)).toBe(true);
      await waitUntil('the outbound sends and their statuses', () => vonage.events.filter((event) => event.type === 'custom:wechat:status').length >= OUTBOUND, 20_000);
      expect(weChat.sent).toHaveLength(OUTBOUND);
      expect(weChat.tokenFetches).toBe(1);
      expect(new Set(weChat.sent.map((sent) => sent.accessToken)).size).toBe(1);

      // 2. Inbound, with a kill half-way.
      let acknowledged = 0;
      let victim: Instance | undefined;
      let leasedAtKill: Map<string, string> | undefined;
      let killed: Promise<void> | undefined;
      const afterAck = () => {
        acknowledged += 1;
        if (acknowledged === TOTAL / 2) {
          killed = (async () => {
            victim = instances[1]!;
            victim.child.kill('SIGKILL');
            await victim.exited;
            // The jobs leased at this moment (the victim's among them, which stay leased until their lease runs out).
            const rows = await db.query<{ seq: string; payload: string }>('SELECT seq::text AS seq, payload FROM jobs WHERE running');
            leasedAtKill = new Map(
              rows.map((row) => [row.seq, String((JSON.parse(row.payload) as { event: { body: { msg_id: string } } }).event.body.msg_id)]),
            );
          })();
        }
      };
      const users = Array.from({ length: USERS }, async (_, user) => {
        for (let n = 0; n < PER_USER; n += 1) {
          const xml = textXml(user, n);
          if (n % 5 === 0) {
            // A WeChat retry of the same message landing on another instance while the first is in flight.
            const first = nextInstance();
            await Promise.all([pushUntilAcknowledged(xml, first), pushUntilAcknowledged(xml, nextInstance(first))]);
          } else {
            await pushUntilAcknowledged(xml);
          }
          afterAck();
        }
      });
      await Promise.all(users);
      await killed;
      expect(victim).toBeDefined();

      // The killed instance's jobs come back after their lease (15 s); everything drains.
      await waitUntil('the queue to drain', async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM jobs'))[0]!.n) === 0, 60_000);

      // Nothing was given up on (a dead letter here would name the reason).
      expect(await db.query('SELECT kind, reason FROM dead_letters')).toEqual([]);

      const inbound = vonage.events.filter((event) => event.type === 'custom:wechat:message');
      const byMsgId = new Map<string, number>();
      for (const event of inbound) byMsgId.set(String(event.body.msg_id), (byMsgId.get(String(event.body.msg_id)) ?? 0) + 1);

      // Every message arrived.
      expect(byMsgId.size).toBe(TOTAL);
      for (let user = 0; user < USERS; user += 1) {
        for (let n = 0; n < PER_USER; n += 1) expect(byMsgId.has(msgIdOf(user, n))).toBe(true);
      }

      // A post can be repeated only where a log line said its first run's effect was unknown: a run
      // taken over (the killed instance's, or one whose live instance lost its lease on an overloaded
      // machine), or a post that got no answer in time (it may still land at Vonage after the retry
      // looked for it). Everything else arrives exactly once, and every user's first copies in order.
      const survivorLines = instances.filter((instance) => instance !== victim).flatMap((instance) => instance.logLines());
      const allLines = instances.flatMap((instance) => instance.logLines());
      const lostLeases = new Set(allLines.filter((line) => LEASE_LOST_LOGS.some((text) => String(line.msg).startsWith(text))).map((line) => String(line.jobId)));
      const unansweredPosts = allLines.filter(
        (line) => String(line.msg).startsWith('job failed') && /POST .*no answer within/.test(String((line.error as { message?: unknown } | undefined)?.message)),
      ).length;
      const interruptedJobs = survivorLines.filter((line) => String(line.msg).startsWith(INTERRUPTED_LOG)).map((line) => String(line.jobId));
      const repeated = [...byMsgId].filter(([, count]) => count > 1).map(([msgId]) => msgId);
      expect(repeated.length).toBeLessThanOrEqual(new Set(interruptedJobs).size + unansweredPosts);
      for (let user = 0; user < USERS; user += 1) {
        const sequence = inbound.filter((event) => event.body.from === openidOf(user)).map((event) => String(event.body.msg_id));
        expect([...new Set(sequence)]).toEqual(Array.from({ length: PER_USER }, (_, n) => msgIdOf(user, n)));
      }

      // The jobs taken over were ones the killed instance had leased, or whose lease a live instance lost.
      expect(interruptedJobs.filter((jobId) => !leasedAtKill!.has(jobId) && !lostLeases.has(jobId))).toEqual([]);
      process.stdout.write(
        `multi-instance: ${TOTAL} messages, ${inbound.length} events, ${repeated.length} repeated ` +
          `(${new Set(interruptedJobs).size} jobs taken over flagged interrupted, ${lostLeases.size} leases lost by a live instance, ` +
          `${unansweredPosts} posts without an answer in time)\n`,
      );

      // Still one token for everyone.
      expect(weChat.tokenFetches).toBe(1);
    },
    120_000,
  );
});
