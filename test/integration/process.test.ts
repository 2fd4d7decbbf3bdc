/**
 * The real `node dist/main.js` process (what `npm start` runs), built by `npm test` before jest:
 * start-up validation, and durability across SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { startFakeVonage } from '../support/fake-vonage';
import { testKeyPair } from '../support/keys';
import { TEST_CONVERSATION_ID, TEST_TOKEN, TEST_VONAGE_APP_ID } from '../support/bridge-harness';
import { pushToBridge } from '../support/wechat-push';
import { freePort, waitForHttp } from '../support/net';
import { sleep } from '../support/wait';

const waitForHealth = (baseUrl: string) => waitForHttp(`${baseUrl}/healthz`);

const MAIN = path.join(__dirname, '../../dist/main.js');
const NODE = process.execPath;

function run(env: Record<string, string>, cwd: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  let output = '';
  const child = spawn(NODE, [MAIN], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('npm start (dist/main.js)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-proc-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('exits non-zero before listening, naming every missing variable', async () => {
    const { exited, output } = run({}, dir);
    expect(await exited).not.toBe(0);
    for (const name of ['WECHAT_TOKEN', 'WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'VONAGE_APPLICATION_ID', 'VONAGE_PRIVATE_KEY']) {
      expect(output()).toContain(name);
    }
    // Optional: unset means a conversation per WeChat user.
    expect(output()).not.toContain('VONAGE_CONVERSATION_ID');
  });

  test('names malformed values and why, without echoing secrets', async () => {
    const { exited, output } = run(
      {
        WECHAT_TOKEN: 'tok',
        WECHAT_APP_ID: 'wx123',
        WECHAT_APP_SECRET: 'secret-value-123',
        WECHAT_ENCODING_AES_KEY: 'tooShort',
        VONAGE_APPLICATION_ID: TEST_VONAGE_APP_ID,
        VONAGE_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\\nnotakey\\n-----END PRIVATE KEY-----',
        VONAGE_CONVERSATION_ID: TEST_CONVERSATION_ID,
        PORT: 'eighty',
        LOG_LEVEL: 'loud',
      },
      dir,
    );
    expect(await exited).not.toBe(0);
    const text = output();
    expect(text).toMatch(/WECHAT_ENCODING_AES_KEY .*43/);
    expect(text).toContain('VONAGE_PRIVATE_KEY');
    expect(text).toContain('PORT');
    expect(text).toContain('LOG_LEVEL');
    expect(text).not.toContain('notakey');
    expect(text).not.toContain('secret-value-123');
  });

  test('a message answered `success` survives SIGKILL right after and is delivered after restart', async () => {
    const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: TEST_VONAGE_APP_ID });
    const port = await freePort();
    const unreachable = await freePort(); // nothing listens here: Vonage is "down" during the first run
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      WECHAT_TOKEN: TEST_TOKEN,
      WECHAT_APP_ID: 'wx2c2769f8efd9abc2',
      WECHAT_APP_SECRET: 'secret',
      VONAGE_APPLICATION_ID: TEST_VONAGE_APP_ID,
      VONAGE_PRIVATE_KEY: testKeyPair().privateKeyPem,
      VONAGE_CONVERSATION_ID: TEST_CONVERSATION_ID,
      DATABASE_URL: `sqlite:${path.join(dir, 'crash.db')}`,
      LOG_LEVEL: 'warn',
    };
    const baseUrl = `http://127.0.0.1:${port}`;
    try {
      const first = run({ ...env, VONAGE_API_BASE_URL: `http://127.0.0.1:${unreachable}/v1` }, dir);
      await waitForHealth(baseUrl);
      const xml = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
      expect(await pushToBridge(baseUrl, xml, { token: TEST_TOKEN })).toEqual({ status: 200, text: 'success' });
      first.child.kill('SIGKILL');
      await first.exited;

      const second = run({ ...env, VONAGE_API_BASE_URL: vonage.baseUrl }, dir);
      try {
        await waitForHealth(baseUrl);
        const events = await vonage.waitForEvents(1, 20_000);
        expect(events[0]!.body).toMatchObject({ content: 'this is a test', msg_id: '1234567890123456' });
        await sleep(300);
        expect(vonage.events).toHaveLength(1);
      } finally {
        second.child.kill('SIGTERM');
        expect(await second.exited).toBe(0);
      }
    } finally {
      await vonage.close();
    }
  });
});
