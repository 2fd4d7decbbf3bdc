/**
 * `wechat-bridge window <openid>` reads the reply window from the bridge's own store (a SQLite file
 * in a temporary directory, where the bridge's default DATABASE_URL puts it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createReplyWindowTracker } from '../../src/bridge/reply-window';
import { runCli } from '../../src/cli/run';
import { openStore } from '../../src/store/open-store';

// Near the real time: the store prunes windows closed for more than a day by its own clock.
const NOW = Math.floor(Date.now() / 1000) * 1000;

async function run(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    env: {},
    cwd,
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    now: () => NOW,
  });
  return { code, stdout, stderr };
}

describe('wechat-bridge window', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-cli-window-'));
    const store = await openStore(`sqlite:${path.join(dir, 'data', 'bridge.db')}`);
    const tracker = createReplyWindowTracker({ store, now: () => NOW });
    // oOpen wrote 46 hours ago and got 2 replies; oClosed wrote 60 hours ago.
    await tracker.apply('default', 'oOpen', { kind: 'message', openedAt: NOW - 46 * 3_600_000 });
    await tracker.used('default', 'oOpen');
    await tracker.used('default', 'oOpen');
    await tracker.apply('default', 'oClosed', { kind: 'message', openedAt: NOW - 60 * 3_600_000 });
    await store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('an open window: when it closes and the replies left', async () => {
    expect(await run(['window', 'oOpen'], dir)).toEqual({ code: 0, stdout: 'oOpen: closes in 2 h · 3 replies left\n', stderr: '' });
    const json = await run(['window', 'oOpen', '--json'], dir);
    expect(JSON.parse(json.stdout)).toEqual({
      account: 'default',
      openid: 'oOpen',
      reply_window: { closes_at: Math.floor(NOW / 1000) + 2 * 3600, replies_left: 3 },
    });
  });

  test('a closed window, and a user the bridge never heard from', async () => {
    expect((await run(['window', 'oClosed'], dir)).stdout).toBe(`oClosed: closed since ${new Date(NOW - 12 * 3_600_000).toISOString()}\n`);
    expect((await run(['window', 'oStranger'], dir)).stdout).toBe('oStranger: closed: the user has not written yet\n');
  });

  test('without an openid it is a usage error', async () => {
    const missing = await run(['window'], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('wechat-bridge');
  });
});
