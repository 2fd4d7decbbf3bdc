/**
 * The log line that says a message was stored and acknowledged survives a SIGKILL right after the
 * `success` answer. The real process (`node dist/main.js`) logs to a pipe whose reader is slow, as a
 * container runtime or journald often is: once the pipe is full, lines an asynchronous logger still
 * holds in memory die with the process. It is killed the moment the test has its answers; whatever
 * it wrote to the pipe is still read afterwards, and must hold the line of every acknowledged message.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TEST_APP_ID, TEST_APP_SECRET, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { BRIDGE_MAIN, bridgeProcessEnv } from '../support/bridge-process';
import { startFakeVonage } from '../support/fake-vonage';
import { startFakeWeChat } from '../support/fake-wechat';
import { testKeyPair } from '../support/keys';
import { freePort, waitForHttp } from '../support/net';
import { pushToBridge } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const ROUNDS = 2;
/** Messages answered at once just before each kill: enough log to fill the pipe several times over. */
const BURST = 500;
/** The slow reader: what the pipe holds is taken every this often. */
const READ_EVERY_MS = 1500;

test('every "stored and acknowledged" line of a message answered `success` survives a SIGKILL right after', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-crash-logs-'));
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
  const weChat = await startFakeWeChat({ appId: TEST_APP_ID, appSecret: TEST_APP_SECRET });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const env = bridgeProcessEnv({
    port,
    vonageBaseUrl: vonage.baseUrl,
    weChatBaseUrl: weChat.baseUrl,
    databaseUrl: `sqlite:${path.join(dir, 'bridge.db')}`,
    logLevel: 'debug',
  });
  let bridge: ChildProcess | undefined;
  const acknowledged: string[] = [];
  const output: Buffer[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, [BRIDGE_MAIN], { cwd: dir, env, stdio: ['ignore', 'pipe', 'ignore'] });
      bridge = child;
      const drain = () => {
        for (let chunk: Buffer | null; (chunk = child.stdout.read() as Buffer | null) !== null; ) output.push(chunk);
      };
      // A 'readable' listener keeps the stream paused (read only by `drain`), also once the child is gone.
      let slow = true;
      child.stdout.on('readable', () => {
        if (!slow) drain();
      });
      const reader = setInterval(drain, READ_EVERY_MS);
      const ended = new Promise<void>((resolve) => child.stdout.once('end', resolve));
      await waitForHttp(`${baseUrl}/healthz`);
      const ids = Array.from({ length: BURST }, (_, n) => String(910_000 + round * 1000 + n));
      const answers = await Promise.all(
        ids.map((id) => pushToBridge(baseUrl, TEXT.replace('1234567890123456', id).replace('fromUser', `oCrashLog${id}`), { token: TEST_TOKEN })),
      );
      child.kill('SIGKILL'); // the instant the last answer is in
      ids.forEach((id, n) => {
        if (answers[n]!.status === 200 && answers[n]!.text === 'success') acknowledged.push(id);
      });
      await new Promise((resolve) => child.once('exit', resolve));
      // What reached the pipe before the kill is still there to read.
      slow = false;
      drain();
      await ended;
      clearInterval(reader);
      drain();
    }
    const lines = Buffer.concat(output)
      .toString('utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; msgId?: string });
    const logged = new Set(lines.filter((l) => l.msg === 'stored and acknowledged').map((l) => l.msgId));
    expect(acknowledged).toHaveLength(ROUNDS * BURST);
    expect(acknowledged.filter((id) => !logged.has(id))).toEqual([]);
  } finally {
    bridge?.kill('SIGKILL');
    await vonage.close();
    await weChat.close();
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
