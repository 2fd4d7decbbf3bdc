import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { PermanentError, RetryableError } from '../../../src/errors';
import { SqliteStore } from '../../../src/store/sqlite/store';
import { WeChatApiError } from '../../../src/wechat/transport';
import { AccessTokenManager, type AccessTokenManagerOptions } from '../../../src/wechat/token-manager';
import { startFakeWeChat, type FakeWeChat } from '../../support/fake-wechat';

const APP_ID = 'wx1234567890abcdef';
const APP_SECRET = 'app-secret-0123456789abcdef0123456';
const TOKEN_NAME = `wechat:access_token:${APP_ID}`;

let fake: FakeWeChat;
let store: SqliteStore;
const logLines: string[] = [];
const logger = pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) });
const errorsSeen: unknown[] = [];
const tokensIssued: string[] = [];

function manager(overrides: Partial<AccessTokenManagerOptions> = {}): AccessTokenManager {
  return new AccessTokenManager({ appId: APP_ID, appSecret: APP_SECRET, baseUrl: fake.baseUrl, store, logger, ...overrides });
}

/** Awaits a rejection and keeps the error for the no-secrets check. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    errorsSeen.push(error);
    return error as Error;
  }
  throw new Error('expected a rejection');
}

beforeEach(async () => {
  fake = await startFakeWeChat({ appId: APP_ID, appSecret: APP_SECRET });
  store = SqliteStore.open(':memory:');
});

afterEach(async () => {
  tokensIssued.push(...fake.issuedTokens);
  await fake.close();
  await store.close();
});

afterAll(() => {
  // No secret and no token in any thrown error or log line of this file.
  const text = [
    ...errorsSeen.map((error) => `${String(error)} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`),
    ...logLines,
  ].join('\n');
  expect(errorsSeen.length).toBeGreaterThan(5);
  expect(logLines.length).toBeGreaterThan(0);
  expect(text).not.toContain(APP_SECRET);
  expect(text).not.toContain('wrong-secret-value');
  expect(tokensIssued.length).toBeGreaterThan(3);
  for (const token of tokensIssued) expect(text).not.toContain(token);
});

describe('AccessTokenManager: sharing', () => {
  it('fetches once for 100 concurrent callers, with a normal-mode stable_token request', async () => {
    const tokens = manager();
    const results = await Promise.all(Array.from({ length: 100 }, () => tokens.getToken()));
    expect(fake.tokenFetches).toBe(1);
    expect(new Set(results)).toEqual(new Set([fake.issuedTokens[0]]));
    expect(fake.tokenRequests).toEqual([{ grant_type: 'client_credential', appid: APP_ID, secret: APP_SECRET }]);
    // Later calls use the stored token.
    await tokens.getToken();
    expect(fake.tokenFetches).toBe(1);
    expect((await store.getToken(TOKEN_NAME))?.value).toBe(fake.issuedTokens[0]);
  });

  it('fetches once for two instances sharing one database file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'token-manager-'));
    const file = path.join(dir, 'bridge.db');
    const storeA = SqliteStore.open(file);
    const storeB = SqliteStore.open(file);
    try {
      const a = manager({ store: storeA, owner: 'instance-a' });
      const b = manager({ store: storeB, owner: 'instance-b' });
      const results = await Promise.all([
        ...Array.from({ length: 10 }, () => a.getToken()),
        ...Array.from({ length: 10 }, () => b.getToken()),
      ]);
      expect(fake.tokenFetches).toBe(1);
      expect(new Set(results).size).toBe(1);
      // A third instance started later reads the shared token too.
      expect(await manager({ store: storeB, owner: 'instance-c' }).getToken()).toBe(results[0]);
      expect(fake.tokenFetches).toBe(1);
    } finally {
      await storeA.close();
      await storeB.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refreshes before expiry (injected clock), when WeChat rotates the token', async () => {
    await fake.close();
    let clock = Date.parse('2025-01-01T00:00:00Z');
    fake = await startFakeWeChat({ appId: APP_ID, appSecret: APP_SECRET, now: () => clock });
    const tokens = manager({ now: () => clock });

    const first = await tokens.getToken();
    clock += (7200 - 301) * 1000; // 301 s left: still used as is
    expect(await tokens.getToken()).toBe(first);
    expect(fake.tokenFetches).toBe(1);

    clock += 2_000; // 299 s left: refreshed, and WeChat (5 min before expiry) gives a new one
    const second = await tokens.getToken();
    expect(fake.tokenFetches).toBe(2);
    expect(second).not.toBe(first);
    expect(second).toBe(fake.issuedTokens[1]);
    expect((await store.getToken(TOKEN_NAME))?.expiresAt).toBe(clock + 7200 * 1000);
  });

  it('keeps using a still-valid token while another process holds the refresh lock', async () => {
    const now = Date.now();
    await store.putToken(TOKEN_NAME, { value: 'near-expiry', expiresAt: now + 60_000 });
    expect(await store.tryLock(`${TOKEN_NAME}:refresh`, 'someone-else', 60_000)).toBe(true);
    expect(await manager().getToken()).toBe('near-expiry');
    expect(fake.tokenFetches).toBe(0);
  });

  it('waits a bounded time for another process, then fails clearly', async () => {
    expect(await store.tryLock(`${TOKEN_NAME}:refresh`, 'stuck-process', 60_000)).toBe(true);
    const error = await rejection(manager({ lockWaitMs: 200, lockPollMs: 20 }).getToken());
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/timed out after 200 ms waiting for another process/);
    expect(fake.tokenFetches).toBe(0);
  });

  it('a live holder renews its short lock through a slow fetch: nobody else fetches meanwhile', async () => {
    fake.inject('/cgi-bin/stable_token', [{ delayMs: 700 }]);
    const holder = manager({ owner: 'holder', lockTtlMs: 200, lockPollMs: 10 });
    const waiter = manager({ owner: 'waiter', lockTtlMs: 200, lockPollMs: 10 });
    const first = holder.getToken();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const [a, b] = await Promise.all([first, waiter.getToken()]);
    expect(b).toBe(a);
    expect(fake.tokenFetches).toBe(1);
  });

  it('a lock whose holder stopped renewing it (a dead process) is taken over within one short lease', async () => {
    expect(await store.tryLock(`${TOKEN_NAME}:refresh`, 'dead-process', 200)).toBe(true);
    const startedAt = Date.now();
    expect(await manager({ lockTtlMs: 200, lockPollMs: 10 }).getToken()).toBe(fake.issuedTokens[0]);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(fake.tokenFetches).toBe(1);
  });

  it('picks up the token another process stored while it waited', async () => {
    expect(await store.tryLock(`${TOKEN_NAME}:refresh`, 'other-process', 60_000)).toBe(true);
    const pending = manager({ lockPollMs: 10 }).getToken();
    setTimeout(() => void store.putToken(TOKEN_NAME, { value: 'from-other', expiresAt: Date.now() + 7_200_000 }), 50);
    expect(await pending).toBe('from-other');
    expect(fake.tokenFetches).toBe(0);
  });
});

describe('AccessTokenManager: invalidate', () => {
  it('refetches in normal mode when the stored token is the rejected one', async () => {
    const tokens = manager();
    const first = await tokens.getToken();
    fake.expireTokens();
    const replacement = await tokens.invalidate(first);
    expect(replacement).not.toBe(first);
    expect(replacement).toBe(fake.issuedTokens[1]);
    expect(fake.tokenFetches).toBe(2);
    expect(fake.tokenRequests.every((body) => (body as Record<string, unknown>)['force_refresh'] !== true)).toBe(true);
  });

  it('returns the replacement without fetching when someone already replaced it', async () => {
    const tokens = manager();
    await store.putToken(TOKEN_NAME, { value: 'newer', expiresAt: Date.now() + 7_200_000 });
    expect(await tokens.invalidate('older')).toBe('newer');
    expect(fake.tokenFetches).toBe(0);
  });

  it('shares one refetch between concurrent invalidations of the same token', async () => {
    const tokens = manager();
    const first = await tokens.getToken();
    fake.expireTokens();
    const replacements = await Promise.all(Array.from({ length: 20 }, () => tokens.invalidate(first)));
    expect(new Set(replacements)).toEqual(new Set([fake.issuedTokens[1]]));
    expect(fake.tokenFetches).toBe(2);
  });
});

describe('AccessTokenManager: errors', () => {
  it('40164 (IP not in allowlist) is permanent and says how to fix it', async () => {
    fake.inject('/cgi-bin/stable_token', [{ errcode: 40164 }]);
    const error = await rejection(manager().getToken());
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toBeInstanceOf(WeChatApiError);
    expect((error as PermanentError).code).toBe('40164');
    expect(error.message).toMatch(/40164 invalid ip/);
    expect(error.message).toMatch(/add the server's outbound IP to the allowlist/);
  });

  it('a wrong AppID (40013) or AppSecret (40125) is permanent and names the setting, not the value', async () => {
    const badAppId = await rejection(manager({ appId: 'wx-not-mine' }).getToken());
    expect(badAppId).toBeInstanceOf(PermanentError);
    expect((badAppId as PermanentError).code).toBe('40013');
    expect(badAppId.message).toMatch(/WECHAT_APP_ID/);

    const badSecret = await rejection(manager({ appSecret: 'wrong-secret-value' }).getToken());
    expect(badSecret).toBeInstanceOf(PermanentError);
    expect((badSecret as PermanentError).code).toBe('40125');
    expect(badSecret.message).toMatch(/WECHAT_APP_SECRET/);
  });

  it('-1 (system busy) and HTTP 5xx are retryable, and the next call tries again', async () => {
    fake.inject('/cgi-bin/stable_token', [{ errcode: -1 }, { status: 502 }]);
    const tokens = manager();
    expect(await rejection(tokens.getToken())).toBeInstanceOf(RetryableError);
    const bad = await rejection(tokens.getToken());
    expect(bad).toBeInstanceOf(RetryableError);
    expect(bad.message).toMatch(/HTTP 502/);
    expect(await tokens.getToken()).toBe(fake.issuedTokens[0]);
    expect(fake.tokenFetches).toBe(3);
  });

  it('a timeout, a reset and a refused connection are retryable', async () => {
    fake.inject('/cgi-bin/stable_token', [{ delayMs: 1_000 }, { reset: true }]);
    const tokens = manager({ timeoutMs: 100 });
    const timeout = await rejection(tokens.getToken());
    expect(timeout).toBeInstanceOf(RetryableError);
    expect(timeout.message).toMatch(/timed out after 100 ms/);
    expect(await rejection(tokens.getToken())).toBeInstanceOf(RetryableError);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await rejection(manager({ baseUrl: `http://127.0.0.1:${port}` }).getToken());
    expect(refused).toBeInstanceOf(RetryableError);
    expect(refused.message).toMatch(/ECONNREFUSED/);
  });

  it('an answer without a token is retryable and nothing is stored', async () => {
    const server = createServer((_req, res) => res.end('{"expires_in":7200}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const error = await rejection(manager({ baseUrl: `http://127.0.0.1:${port}` }).getToken());
      expect(error).toBeInstanceOf(RetryableError);
      expect(await store.getToken(TOKEN_NAME)).toBeUndefined();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
