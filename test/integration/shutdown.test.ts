/**
 * Graceful shutdown of the real process (`node dist/main.js`): SIGTERM while WeChat is pushing.
 * Every message answered `success` before or during the drain is delivered (after a restart if the
 * drain left it queued), none twice, and the process exits 0 well inside its 30-second limit. And a
 * client that keeps its socket alive (a browser, WeChat's servers) cannot hold a stop open.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startHarness, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { startFakeVonage } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { sleep } from '../support/wait';
import { pushToBridge, signedPush } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');

test('SIGTERM under load: exit 0, nothing acknowledged is lost or doubled', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-shutdown-'));
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  // Vonage answers slowly, so that jobs are in flight when the signal comes.
  vonage.script(Array.from({ length: 40 }, () => ({ delayMs: 200 })));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = bridgeProcessEnv({ port, vonageBaseUrl: vonage.baseUrl, databaseUrl: `sqlite:${path.join(dir, 'bridge.db')}` });
  const start = () => {
    const child = spawn(process.execPath, [BRIDGE_MAIN], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, exited };
  };
  try {
    const first = start();
    await waitForHttp(`${baseUrl}/healthz`);

    // 60 messages from 6 users, pushed concurrently; SIGTERM after the first 20 are answered.
    const acknowledged: string[] = [];
    const xmlFor = (i: number) =>
      TEXT.replace('fromUser', `user${i % 6}`).replace('1234567890123456', String(5000 + i)).replace('this is a test', `m${i}`);
    let signalled = 0;
    const pushes = Array.from({ length: 60 }, async (_, i) => {
      await sleep(i * 5);
      try {
        const answer = await pushToBridge(baseUrl, xmlFor(i), { token: TEST_TOKEN });
        if (answer.status === 200 && answer.text === 'success') acknowledged.push(String(5000 + i));
      } catch {
        // refused after the listener closed: not acknowledged, WeChat would retry
      }
      if (acknowledged.length === 20 && signalled === 0) {
        signalled = Date.now();
        first.child.kill('SIGTERM');
      }
    });
    await Promise.all(pushes);
    const code = await first.exited;
    expect(code).toBe(0);
    expect(signalled).toBeGreaterThan(0);
    expect(Date.now() - signalled).toBeLessThan(30_000);
    expect(acknowledged.length).toBeGreaterThanOrEqual(20);

    // Whatever the drain left queued is delivered by the next process.
    const second = start();
    try {
      await waitForHttp(`${baseUrl}/healthz`);
      const deadline = Date.now() + 20_000;
      const delivered = () => new Set(vonage.events.map((e) => String(e.body.msg_id)));
      while (Date.now() < deadline && !acknowledged.every((id) => delivered().has(id))) {
        await sleep(100);
      }
      for (const id of acknowledged) expect(delivered().has(id)).toBe(true);
      const ids = vonage.events.map((e) => String(e.body.msg_id));
      expect(ids.length).toBe(new Set(ids).size); // none twice
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  } finally {
    await vonage.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a keep-alive client that goes on sending through a stop does not hold the server open', async () => {
  const harness = await startHarness();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const answers: Array<{ path: string; status: number; connection: string | undefined }> = [];
  const send = (method: 'GET' | 'POST', path: string, headers: Record<string, string | number> = {}) => {
    const req = httpRequest(`${harness.baseUrl}${path}`, { method, agent, headers });
    const answered = new Promise<void>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          answers.push({ path: path.split('?')[0]!, status: res.statusCode ?? 0, connection: res.headers.connection });
          resolve();
        });
      });
      req.on('error', () => resolve());
    });
    return { req, answered };
  };
  let polling = true;
  let poller: Promise<void> | undefined;
  try {
    // A push in flight on the kept-alive socket when the stop begins: its body is not all sent yet.
    const push = signedPush(TEXT, { token: TEST_TOKEN });
    const body = Buffer.from(push.body);
    const arrived = once(harness.bridge.server, 'request');
    const inFlight = send('POST', push.path, { 'Content-Type': 'text/xml', 'Content-Length': body.length });
    inFlight.req.write(body.subarray(0, 10));
    // The server has read its headers: the socket is busy, not idle, when the stop begins.
    await arrived;
    const stopped = harness.bridge.stop();
    inFlight.req.end(body.subarray(10));
    await inFlight.answered;
    // Then, like a browser page, a request every 100 ms on the same socket.
    poller = (async () => {
      while (polling) {
        const poll = send('GET', '/healthz');
        poll.req.end();
        await poll.answered;
        await sleep(100);
      }
    })();
    // Before the fix each request kept the socket busy and `server.close()` never called back.
    await expect(Promise.race([stopped.then(() => 'stopped'), sleep(10_000).then(() => 'still open')])).resolves.toBe('stopped');
    expect(answers[0]).toMatchObject({ path: '/weChatEvent', status: 200 });
    // A request that came during the stop was answered, and told the socket closes.
    for (const answer of answers.slice(1)) expect(answer.connection).toBe('close');
  } finally {
    polling = false;
    await poller;
    agent.destroy();
    await harness.close();
  }
}, 30_000);
