/**
 * `npm run sandbox` as a newcomer runs it: the script builds, then starts `dist/sandbox/main.js`.
 * `npm test` builds before jest, so this runs the fresh build's entry point as a child process
 * (rebuilding here would rewrite dist/ under the other process tests): one clear line, the console
 * on `/`, `/healthz`, and a clean stop on Ctrl-C (SIGINT) that deletes the throwaway store.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../support/net';
import { sleep } from '../support/wait';

const ROOT = path.join(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'sandbox', 'main.js');

test('the sandbox script builds first, then runs the sandbox entry point', () => {
  const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  expect(scripts.sandbox).toBe('npm run build --silent && node dist/sandbox/main.js');
  expect(existsSync(MAIN)).toBe(true);
});

test('started as a child process it answers on / and /healthz, and stops cleanly on SIGINT', async () => {
  const port = await freePort();
  // A PATH without the project's bin: the entry point must not need anything from the shell.
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let store: string | undefined;
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 20_000;
    while (!output.includes('Sandbox ready')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no "Sandbox ready" line; output:\n${output}`);
      await sleep(50);
    }
    expect(output.split('\n')[0]).toBe(`Sandbox ready: open http://localhost:${port}/`);
    store = /Throwaway store: (\S+)/.exec(output)?.[1];
    expect(store && existsSync(store)).toBe(true);

    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Sandbox');
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, 'ok']);
    const state = (await (await fetch(`http://127.0.0.1:${port}/sandbox/api/state`)).json()) as { users: unknown[] };
    expect(state.users).toHaveLength(1);
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
  expect(output).not.toMatch(/error/i);
  expect(existsSync(path.dirname(store!))).toBe(false);
});
