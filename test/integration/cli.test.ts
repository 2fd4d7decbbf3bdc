/**
 * The operator CLI as users run it: the built `node dist/cli/main.js` (built by `npm test` before
 * jest) as a child process, against a temporary SQLite database seeded through the real store, and
 * `send-test` against the fake WeChat API server. Every command, `--help`, and exit codes 0 / 1 / 2.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadSettings } from '../../src/config';
import { inboundJobs } from '../../src/bridge/to-vonage/inbound-jobs';
import { openStore } from '../../src/store/open-store';
import { parseWeChatMessage } from '../../src/wechat/message';
import { parseWeChatXml } from '../../src/wechat/xml';
import type { DeadLetter, Job, Store } from '../../src/store/store';
import { startFakeWeChat, type FakeWeChat } from '../support/fake-wechat';

const CLI = path.join(__dirname, '../../dist/cli/main.js');
const NODE = process.execPath;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with exactly `env` (plus PATH), in `cwd`, stdin not a terminal. */
function cli(args: string[], options: { env?: Record<string, string>; cwd: string }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      NODE,
      [CLI, ...args],
      { cwd: options.cwd, env: { PATH: process.env.PATH ?? '', ...options.env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A usage error: exit 2, a message and the usage on stderr, nothing on stdout. */
function expectUsageError(run: Run, message: RegExp): void {
  expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 2, stdout: '' });
  expect(run.stderr).toMatch(/^wechat-bridge: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).toContain('Usage: wechat-bridge');
}

/** An operational failure: exit 1, one line on stderr, nothing on stdout. */
function expectFailure(run: Run, message: RegExp): void {
  expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
  expect(run.stderr).toMatch(/^wechat-bridge: [^\n]+\n$/);
  expect(run.stderr).toMatch(message);
}

/** Dead-letters a claimed job, as the worker does when a job gives up. */
async function deadLetter(store: Store, job: Job, reason: string): Promise<void> {
  await store.deadLetter(job, reason);
}

const HOUR = 3_600_000;
const SECRET = 'app-secret-0123456789abcdef';

describe('wechat-bridge (dist/cli/main.js)', () => {
  let dir: string;
  let databaseFile: string;
  /** Payloads of the seeded dead letters, oldest first; ids filled in by the seeding. */
  const seeded: Array<{ id: string; kind: string; payload: unknown; reason: string }> = [];

  const openSeeded = () => openStore(`sqlite:${databaseFile}`);
  async function snapshot(): Promise<{ deadLetters: DeadLetter[]; depth: Record<string, number> }> {
    const store = await openSeeded();
    try {
      return { deadLetters: await store.listDeadLetters({ limit: 100 }), depth: (await store.stats()).depth };
    } finally {
      await store.close();
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-cli-'));
    // The bridge's default DATABASE_URL, sqlite:./data/bridge.db, relative to the working directory.
    databaseFile = path.join(dir, 'data', 'bridge.db');
    let clock = Date.now() - 2 * HOUR;
    const store = await openStore(`sqlite:${databaseFile}`, { now: () => clock });
    const jobs = [
      { kind: 'deliver-to-vonage', orderKey: 'wechat:oUserA', payload: { conversationId: 'CON-1', event: { body: { content: '你好 A' } } } },
      { kind: 'send-to-wechat', orderKey: 'wechat:oUserB', payload: { conversationId: 'CON-1', body: { to: 'oUserB', content: 'reply B' } } },
      { kind: 'deliver-to-vonage', orderKey: 'wechat:oUserC', payload: { conversationId: 'CON-1', event: { body: { content: 'C' } } } },
    ];
    await store.enqueue(jobs);
    const claimed = await store.claim({ limit: 10, leaseMs: 60_000 });
    const reasons = ['Vonage 404 conversation:error:not-found', 'WeChat 45015 outside the 48-hour window', 'Vonage 400 body too large\nsecond line'];
    for (const [index, job] of claimed.entries()) {
      clock += 60_000;
      await deadLetter(store, job, reasons[index]!);
      seeded.push({ id: job.id, kind: job.kind, payload: job.payload, reason: reasons[index]! });
    }
    // Live jobs: two deliveries and one send, the oldest two hours old.
    clock = Date.now() - 90 * 60_000;
    await store.enqueue([
      { kind: 'deliver-to-vonage', orderKey: 'wechat:oUserD', payload: { n: 1 } },
      { kind: 'deliver-to-vonage', orderKey: 'wechat:oUserE', payload: { n: 2 } },
      { kind: 'send-to-wechat', orderKey: 'wechat:oUserF', payload: { n: 3 } },
    ]);
    await store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('help', () => {
    test('--help, -h and `help` print the overview on stdout and exit 0', async () => {
      const runs = await Promise.all([cli(['--help'], { cwd: dir }), cli(['-h'], { cwd: dir }), cli(['help'], { cwd: dir })]);
      for (const run of runs) {
        expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
        expect(run.stdout).toContain('Usage: wechat-bridge <command>');
        for (const command of ['queue', 'dead-letters list', 'dead-letters show', 'dead-letters replay', 'dead-letters purge', 'send-test']) {
          expect(run.stdout).toContain(command);
        }
        expect(run.stdout).toMatch(/Exit codes: 0 .*1 .*\n2 /s);
      }
    });

    test('every group and command has its --help (also `help <command>`, and --help beside a bad option)', async () => {
      const topics = [
        ['dead-letters', '--help'],
        ['queue', '--help'],
        ['dead-letters', 'list', '--help'],
        ['dead-letters', 'show', '-h'],
        ['dead-letters', 'replay', '--help'],
        ['dead-letters', 'purge', '--help'],
        ['send-test', '--help'],
        ['help', 'dead-letters', 'purge'],
        ['queue', '--bogus', '--help'],
      ];
      const runs = await Promise.all(topics.map((args) => cli(args, { cwd: dir })));
      runs.forEach((run, index) => {
        const topic = topics[index]!.filter((word) => !word.startsWith('-') && word !== 'help').join(' ');
        expect({ topic, code: run.code, stderr: run.stderr }).toEqual({ topic, code: 0, stderr: '' });
        expect(run.stdout).toContain(`Usage: wechat-bridge ${topic}`);
      });
      expect(runs[5]!.stdout).toContain('--yes');
      expect(runs[6]!.stdout).toContain('WECHAT_APP_SECRET');
    });
  });

  test('usage errors exit 2, with the message and the usage on stderr', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /no command given/],
      [['bogus'], /unknown command "bogus"/],
      [['--json'], /unknown option "--json"/],
      [['dead-letters'], /dead-letters needs a subcommand/],
      [['dead-letters', 'bogus'], /unknown dead-letters command "bogus"/],
      [['queue', '--bogus'], /Unknown option '--bogus'/],
      [['queue', 'extra'], /queue takes 0 arguments, got 1/],
      [['dead-letters', 'list', '--limit', '0'], /--limit must be a whole number/],
      [['dead-letters', 'list', '--limit'], /--limit/],
      [['dead-letters', 'show'], /takes 1 argument, got 0/],
      [['dead-letters', 'replay'], /give its id .* or --all/],
      [['dead-letters', 'replay', '1', '--all'], /not both/],
      [['dead-letters', 'purge', '1', '2'], /takes 0 to 1 argument, got 2/],
      [['send-test', 'oUserA'], /give an openid and one text/],
      [['help', 'bogus'], /no help for "bogus"/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args, { cwd: dir })));
    runs.forEach((run, index) => {
      const [args, message] = cases[index]!;
      try {
        expectUsageError(run, message);
      } catch (error) {
        throw new Error(`wechat-bridge ${args.join(' ')}: ${(error as Error).message}`, { cause: error });
      }
    });
  });

  describe('queue', () => {
    test('shows the depth per kind, the oldest age and the dead letters count', async () => {
      const run = await cli(['queue'], { cwd: dir });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/deliver-to-vonage\s+2\n/);
      expect(run.stdout).toMatch(/send-to-wechat\s+1\n/);
      expect(run.stdout).toMatch(/total\s+3\n/);
      expect(run.stdout).toMatch(/Oldest job: 1h 30m in the queue/);
      expect(run.stdout).toContain('Dead letters: 3');
    });

    test('--json is machine-readable', async () => {
      const run = await cli(['queue', '--json'], { cwd: dir });
      expect(run.code).toBe(0);
      const json = JSON.parse(run.stdout) as { depth: Record<string, number>; total: number; oldestAgeMs: number; deadLetters: number };
      expect(json).toMatchObject({ depth: { 'deliver-to-vonage': 2, 'send-to-wechat': 1 }, total: 3, deadLetters: 3 });
      expect(json.oldestAgeMs).toBeGreaterThanOrEqual(90 * 60_000);
    });
  });

  describe('dead-letters list and show', () => {
    test('list: newest first, one line each, the reason on one line', async () => {
      const run = await cli(['dead-letters', 'list'], { cwd: dir });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      const lines = run.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^ID\s+DEAD SINCE \(UTC\)\s+KIND\s+ATTEMPTS\s+REASON$/);
      expect(lines.slice(1).map((line) => line.split(/\s+/)[0])).toEqual(seeded.map((letter) => letter.id).reverse());
      expect(lines[1]).toContain('Vonage 400 body too large second line');
      expect(lines[3]).toContain('Vonage 404 conversation:error:not-found');
    });

    test('list --limit and --json', async () => {
      const [limited, json] = await Promise.all([
        cli(['dead-letters', 'list', '--limit', '1'], { cwd: dir }),
        cli(['dead-letters', 'list', '--json'], { cwd: dir }),
      ]);
      expect(limited.code).toBe(0);
      expect(limited.stdout.trimEnd().split('\n')).toHaveLength(3); // header, one row, the "shown" note
      expect(limited.stdout).toContain('(1 of 3 shown; --limit 3 shows more)');
      expect(json.code).toBe(0);
      const letters = JSON.parse(json.stdout) as DeadLetter[];
      expect(letters.map((letter) => [letter.id, letter.kind, letter.payload, letter.reason])).toEqual(
        seeded.map((letter) => [letter.id, letter.kind, letter.payload, letter.reason]).reverse(),
      );
    });

    test('show <id>: every field and the payload; --json the same data', async () => {
      const letter = seeded[0]!;
      const [text, json] = await Promise.all([
        cli(['dead-letters', 'show', letter.id], { cwd: dir }),
        cli(['dead-letters', 'show', letter.id, '--json'], { cwd: dir }),
      ]);
      expect({ code: text.code, stderr: text.stderr }).toEqual({ code: 0, stderr: '' });
      expect(text.stdout).toContain(`Dead letter ${letter.id}`);
      expect(text.stdout).toMatch(/kind:\s+deliver-to-vonage/);
      expect(text.stdout).toMatch(/order key:\s+wechat:oUserA/);
      expect(text.stdout).toMatch(/attempts:\s+1/);
      expect(text.stdout).toContain(letter.reason);
      expect(text.stdout).toContain('"content": "你好 A"');
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({ id: letter.id, kind: letter.kind, payload: letter.payload, reason: letter.reason });
    });

    test('show of an unknown id is an operational failure (exit 1)', async () => {
      expectFailure(await cli(['dead-letters', 'show', '999'], { cwd: dir }), /no dead letter with id "999"/);
    });
  });

  describe('dead-letters purge', () => {
    test('without --yes and without a terminal it refuses (exit 2) and deletes nothing', async () => {
      const run = await cli(['dead-letters', 'purge', seeded[1]!.id], { cwd: dir });
      expectUsageError(run, /add --yes to confirm/);
      expect((await snapshot()).deadLetters).toHaveLength(3);
    });

    test('purge <id> --yes deletes that one; a second purge of it exits 1', async () => {
      const target = seeded[1]!;
      const run = await cli(['dead-letters', 'purge', target.id, '--yes'], { cwd: dir });
      expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 0, stdout: `Purged dead letter ${target.id}.\n` });
      expect((await snapshot()).deadLetters.map((letter) => letter.id)).not.toContain(target.id);
      seeded.splice(1, 1);
      expectFailure(await cli(['dead-letters', 'purge', target.id, '--yes'], { cwd: dir }), /no dead letter with id/);
    });
  });

  describe('dead-letters replay', () => {
    test('replay <id> puts it back on the queue as a new job; an unknown id exits 1', async () => {
      const letter = seeded[0]!;
      const before = await snapshot();
      const run = await cli(['dead-letters', 'replay', letter.id], { cwd: dir });
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      expect(run.stdout).toBe(`Replayed dead letter ${letter.id}: it is queued again as a new job.\n`);
      const after = await snapshot();
      expect(after.deadLetters.map((l) => l.id)).not.toContain(letter.id);
      expect(after.depth[letter.kind]).toBe((before.depth[letter.kind] ?? 0) + 1);
      expectFailure(await cli(['dead-letters', 'replay', letter.id], { cwd: dir }), /no dead letter with id/);
    });

    test('replay --all --json replays every remaining one', async () => {
      const remaining = (await snapshot()).deadLetters.map((letter) => letter.id);
      expect(remaining.length).toBeGreaterThan(0);
      const run = await cli(['dead-letters', 'replay', '--all', '--json'], { cwd: dir });
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ replayed: remaining, missing: [] });
      expect((await snapshot()).deadLetters).toEqual([]);
      const again = await cli(['dead-letters', 'replay', '--all'], { cwd: dir });
      expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 0, stdout: 'No dead letters to replay.\n' });
      const queue = await cli(['queue'], { cwd: dir });
      expect(queue.stdout).toContain('Dead letters: none');
    });
  });

  describe('the store', () => {
    test('a DATABASE_URL naming no database is a one-line failure, and no empty database is created', async () => {
      const run = await cli(['queue'], { cwd: dir, env: { DATABASE_URL: 'sqlite:./missing/bridge.db' } });
      expectFailure(run, /no SQLite database at .*missing\/bridge\.db/);
      expect(existsSync(path.join(dir, 'missing'))).toBe(false);
    });

    test('an unusable DATABASE_URL or database file is a one-line failure (exit 1)', async () => {
      const garbage = path.join(dir, 'garbage.db');
      writeFileSync(garbage, 'this is not a sqlite database '.repeat(200));
      const [badUrl, badFile] = await Promise.all([
        cli(['dead-letters', 'list'], { cwd: dir, env: { DATABASE_URL: 'mysql://root:hunter2hunter2@db/bridge' } }),
        cli(['queue'], { cwd: dir, env: { DATABASE_URL: `sqlite:${garbage}` } }),
      ]);
      expectFailure(badUrl, /DATABASE_URL must be sqlite:<path> or postgres/);
      expect(badUrl.stderr).not.toContain('hunter2');
      expectFailure(badFile, /cannot open the store/);
    });

    test('DATABASE_URL comes from ./.env like the bridge, and the environment wins over it', async () => {
      const other = mkdtempSync(path.join(tmpdir(), 'bridge-cli-env-'));
      try {
        mkdirSync(path.join(other, 'sub'));
        writeFileSync(path.join(other, '.env'), `DATABASE_URL=sqlite:${databaseFile}\n`);
        const fromDotEnv = await cli(['queue', '--json'], { cwd: other });
        expect(fromDotEnv.code).toBe(0);
        expect(JSON.parse(fromDotEnv.stdout)).toMatchObject({ total: expect.any(Number) });
        const envWins = await cli(['queue'], { cwd: other, env: { DATABASE_URL: 'sqlite:./sub/none.db' } });
        expectFailure(envWins, /no SQLite database/);
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    });
  });
});

describe('wechat-bridge dead-letters list --account', () => {
  test('lists only the dead letters of one Official Account', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bridge-cli-accounts-'));
    try {
      const store = await openStore(`sqlite:${path.join(dir, 'data', 'bridge.db')}`);
      const message = (account: string, msgId: string) =>
        inboundJobs(
          parseWeChatMessage(parseWeChatXml(`<xml><ToUserName>gh_1</ToUserName><FromUserName>oUser</FromUserName><CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>${msgId}</MsgId></xml>`)),
          { conversationId: undefined, accountId: account },
        );
      await store.enqueue([
        ...message('sales', '1'),
        ...message('default', '2'),
        { kind: 'send-to-wechat', orderKey: 'conversation:CON-1', payload: { conversationId: 'CON-1', eventId: '9', body: { direction: 'outbound', to: 'oUser', account: 'sales' } } },
      ]);
      const claimed = await store.claim({ limit: 10, leaseMs: 60_000 });
      for (const job of claimed) await deadLetter(store, job, 'gave up');
      await store.close();
      expect(claimed).toHaveLength(3);
      const bySales = claimed.filter((job) => job.orderKey !== 'wechat:oUser').map((job) => job.id).sort();

      const run = await cli(['dead-letters', 'list', '--account', 'sales', '--json'], { cwd: dir });
      expect(run.code).toBe(0);
      expect((JSON.parse(run.stdout) as Array<{ id: string }>).map((letter) => letter.id).sort()).toEqual(bySales);
      const all = await cli(['dead-letters', 'list', '--json'], { cwd: dir });
      expect(JSON.parse(all.stdout)).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('wechat-bridge send-test', () => {
  let weChat: FakeWeChat;
  let dir: string;
  const env = () => ({ WECHAT_APP_ID: 'wx2c2769f8efd9abc2', WECHAT_APP_SECRET: SECRET, WECHAT_API_BASE_URL: weChat.baseUrl });

  beforeAll(async () => {
    weChat = await startFakeWeChat({ appId: 'wx2c2769f8efd9abc2', appSecret: SECRET });
    dir = mkdtempSync(path.join(tmpdir(), 'bridge-cli-send-'));
  });
  afterAll(async () => {
    await weChat.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('sends a text through stable_token + custom/send, needing only the WeChat app settings', async () => {
    // No WECHAT_TOKEN, no VONAGE_*, no DATABASE_URL (and no database file in this directory).
    const run = await cli(['send-test', 'oUser-abc', '你好 from the CLI ✓'], { cwd: dir, env: env() });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout).toBe('Sent a text message to oUser-abc.\n');
    const [sent] = await weChat.waitForSends(1);
    expect(sent!.json).toEqual({ touser: 'oUser-abc', msgtype: 'text', text: { content: '你好 from the CLI ✓' } });
    expect(weChat.tokenRequests.at(-1)).toEqual({ grant_type: 'client_credential', appid: 'wx2c2769f8efd9abc2', secret: SECRET });
    for (const secret of [SECRET, ...weChat.issuedTokens]) expect(run.stdout + run.stderr).not.toContain(secret);
  });

  test('--json', async () => {
    const run = await cli(['send-test', 'oUser-abc', 'hi', '--json'], { cwd: dir, env: env() });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ sent: true, to: 'oUser-abc', msgtype: 'text' });
  });

  test('missing or malformed WeChat settings: exit 1 naming them, nothing sent', async () => {
    const before = weChat.requests.length;
    const [missing, malformed] = await Promise.all([
      cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir }),
      cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: { ...env(), WECHAT_API_BASE_URL: 'ftp://example.com' } }),
    ]);
    expectFailure(missing, /WECHAT_APP_ID is required.*WECHAT_APP_SECRET is required/);
    expect(missing.stderr).not.toMatch(/WECHAT_TOKEN|VONAGE|DATABASE_URL/);
    expectFailure(malformed, /WECHAT_API_BASE_URL must start with http:\/\/ or https:\/\//);
    expect(weChat.requests.length).toBe(before);
  });

  test('WeChat refusals are one clear line (exit 1) with the errcode and what to do, never a secret', async () => {
    weChat.inject('/cgi-bin/message/custom/send', [{ errcode: 45015 }]);
    const outside = await cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: env() });
    expectFailure(outside, /45015.*48-hour window/);

    const wrongSecret = await cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: { ...env(), WECHAT_APP_SECRET: 'wrong-secret-value-42' } });
    expectFailure(wrongSecret, /40125.*WECHAT_APP_SECRET/);
    expect(wrongSecret.stderr).not.toContain('wrong-secret-value-42');

    weChat.inject('/cgi-bin/stable_token', [{ status: 503 }]);
    expectFailure(await cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: env() }), /HTTP 503/);
  });

  test('WeChat unreachable: exit 1; an empty text is a usage error (exit 2) and sends nothing', async () => {
    const unreachable = await cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: { ...env(), WECHAT_API_BASE_URL: 'http://127.0.0.1:9' } });
    expectFailure(unreachable, /WeChat did not take the message: .*ECONNREFUSED/);
    const before = weChat.requests.length;
    expectUsageError(await cli(['send-test', 'oUser-abc', ''], { cwd: dir, env: env() }), /msg_type text needs content/);
    expect(weChat.requests.length).toBe(before);
  });

  test('--account sends as an account of WECHAT_ACCOUNTS_FILE, with its own credentials; an unknown or missing one is a usage error', async () => {
    const other = { id: 'other', appId: 'wx0000000000000000', appSecret: 'other-secret-0123456789', token: 'otherToken' };
    writeFileSync(path.join(dir, 'accounts.json'), JSON.stringify([{ id: 'sales', appId: 'wx2c2769f8efd9abc2', appSecret: SECRET, token: 'salesToken' }, other]));
    const fileEnv = { WECHAT_ACCOUNTS_FILE: 'accounts.json', WECHAT_API_BASE_URL: weChat.baseUrl };
    const sent = weChat.sent.length;

    const run = await cli(['send-test', 'oUser-abc', 'from sales', '--account', 'sales'], { cwd: dir, env: fileEnv });
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: 'Sent a text message to oUser-abc as account sales.\n', stderr: '' });
    expect(weChat.sent.slice(sent).map((s) => s.json)).toEqual([{ touser: 'oUser-abc', msgtype: 'text', text: { content: 'from sales' } }]);
    expect(weChat.tokenRequests.at(-1)).toEqual({ grant_type: 'client_credential', appid: 'wx2c2769f8efd9abc2', secret: SECRET });

    // The other account's AppID is not this WeChat's: its own credentials were used, and refused.
    const asOther = await cli(['send-test', 'oUser-abc', 'hi', '--account', 'other'], { cwd: dir, env: fileEnv });
    expectFailure(asOther, /40013/);
    expect(asOther.stderr).not.toContain(other.appSecret);
    expect(weChat.tokenRequests.at(-1)).toMatchObject({ appid: other.appId });

    expectUsageError(await cli(['send-test', 'oUser-abc', 'hi', '--account', 'nope'], { cwd: dir, env: fileEnv }), /no account nope in accounts\.json \(it lists sales, other\)/);
    expectUsageError(await cli(['send-test', 'oUser-abc', 'hi'], { cwd: dir, env: fileEnv }), /several accounts are configured: name one with --account \(sales, other\)/);
    expect(weChat.sent.length).toBe(sent + 1);
  });
});

describe('loadSettings (the subset of the configuration the CLI validates)', () => {
  test('validates only the named variables, with loadConfig\'s rules and defaults', () => {
    expect(loadSettings({}, ['DATABASE_URL'])).toEqual({ ok: true, settings: { DATABASE_URL: 'sqlite:./data/bridge.db' } });
    // A blank value (example.env's `WECHAT_API_BASE_URL=`) is unset and gets the default.
    expect(loadSettings({ DATABASE_URL: ' ' }, ['DATABASE_URL'])).toEqual({ ok: true, settings: { DATABASE_URL: 'sqlite:./data/bridge.db' } });
    expect(loadSettings({ WECHAT_API_BASE_URL: '' }, ['WECHAT_API_BASE_URL'])).toEqual({
      ok: true,
      settings: { WECHAT_API_BASE_URL: 'https://api.weixin.qq.com' },
    });
    expect(loadSettings({ WECHAT_APP_ID: 'wx1', WECHAT_APP_SECRET: 's' }, ['WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'WECHAT_API_BASE_URL'])).toEqual({
      ok: true,
      settings: { WECHAT_APP_ID: 'wx1', WECHAT_APP_SECRET: 's', WECHAT_API_BASE_URL: 'https://api.weixin.qq.com' },
    });
    const bad = loadSettings({ WECHAT_APP_ID: 'has space', DATABASE_URL: 'mysql://x' }, ['WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'DATABASE_URL']);
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.errors).toEqual([
        'WECHAT_APP_ID must not contain spaces',
        expect.stringMatching(/^WECHAT_APP_SECRET is required/),
        'DATABASE_URL must be sqlite:<path> or postgres://user@host/db',
      ]);
    }
  });
});
