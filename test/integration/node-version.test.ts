/**
 * The entry points on a Node.js too old for node:sqlite (the machine's /usr/bin/node is Node 20, as
 * on CI): one line naming the version needed and exit 1, never a stack trace; the `wechat-bridge`
 * launcher instead runs the CLI on the project's own Node 24. Runs the built files (`npm test`
 * builds first).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isSupportedNodeVersion, MINIMUM_NODE_VERSION } from '../../src/node-version';

const ROOT = path.join(__dirname, '../..');
const OLD_NODE = process.env.OLD_NODE_PATH ?? '/usr/bin/node';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, timeout: 20_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir(), ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('the minimum Node.js version', () => {
  test('versions compare part by part', () => {
    expect(isSupportedNodeVersion('22.13.0')).toBe(true);
    expect(isSupportedNodeVersion('v22.13.1')).toBe(true);
    expect(isSupportedNodeVersion('24.0.0')).toBe(true);
    expect(isSupportedNodeVersion('22.12.9')).toBe(false);
    expect(isSupportedNodeVersion('20.20.2')).toBe(false);
    expect(isSupportedNodeVersion('v18.19.0')).toBe(false);
  });

  test('package.json engines says the same version', () => {
    const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(manifest.engines.node).toBe(`>=${MINIMUM_NODE_VERSION.replace(/\.0$/, '')}`);
  });
});

describe(`entry points on an old Node.js (${OLD_NODE})`, () => {
  let oldVersion = '';
  beforeAll(async () => {
    const version = await run(OLD_NODE, ['--version']);
    oldVersion = version.stdout.trim();
    // These tests are about a Node that is too old: on a machine whose node is new, point
    // OLD_NODE_PATH at an old one rather than letting them pass without testing anything.
    if (version.code !== 0 || isSupportedNodeVersion(oldVersion)) {
      throw new Error(`${OLD_NODE} (${oldVersion || 'not runnable'}) is not a Node.js older than ${MINIMUM_NODE_VERSION}: set OLD_NODE_PATH`);
    }
  });

  test.each(['dist/main.js', 'dist/cli/main.js', 'dist/sandbox/main.js'])('node %s prints one line and exits 1', async (entry) => {
    const result = await run(OLD_NODE, [entry, '--help']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`needs Node.js ${MINIMUM_NODE_VERSION} or newer`);
    expect(lines[0]).toContain(oldVersion.replace(/^v/, ''));
    expect(result.stderr).not.toMatch(/node:sqlite'|at Module|ERR_UNKNOWN_BUILTIN_MODULE/);
  });

  test('bin/wechat-bridge.js runs the CLI on the bundled Node 24', async () => {
    const result = await run(OLD_NODE, ['bin/wechat-bridge.js', '--help']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: wechat-bridge <command>');
  });

  test('bin/wechat-bridge.js without the bundled Node (an --omit=dev install) prints one line and exits 1', async () => {
    // A copy of the package without node_modules/node: the launcher and the compiled files it runs.
    const copy = mkdtempSync(path.join(tmpdir(), 'bridge-omit-dev-'));
    try {
      mkdirSync(path.join(copy, 'bin'));
      cpSync(path.join(ROOT, 'bin/wechat-bridge.js'), path.join(copy, 'bin/wechat-bridge.js'));
      cpSync(path.join(ROOT, 'dist'), path.join(copy, 'dist'), { recursive: true });
      const result = await run(OLD_NODE, [path.join(copy, 'bin/wechat-bridge.js'), 'status']);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trimEnd().split('\n')).toEqual([expect.stringContaining(`wechat-bridge: needs Node.js ${MINIMUM_NODE_VERSION} or newer`)]);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  test('the bundled Node itself is new enough', async () => {
    const result = await run(path.join(ROOT, 'node_modules/.bin/node'), ['--version']);
    expect(isSupportedNodeVersion(result.stdout.trim())).toBe(true);
  });
});
