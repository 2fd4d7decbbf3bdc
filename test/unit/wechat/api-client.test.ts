import { createServer, type Server } from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { PermanentError, RetryableError } from '../../../src/errors';
import { SqliteStore } from '../../../src/store/sqlite/store';
import { UncertainDeliveryError, createWeChatApiClient, type WeChatApiClient } from '../../../src/wechat/api-client';
import { WeChatApiError } from '../../../src/wechat/transport';
import { buildCustomSendBody, buildTypingBody } from '../../../src/wechat/custom-message';
import { AccessTokenManager } from '../../../src/wechat/token-manager';
import { startFakeWeChat, type FakeWeChat } from '../../support/fake-wechat';
import { createLogger, scrubSecrets } from '../../../src/logger';
import { captureLogs } from '../../support/bridge-harness';

const APP_ID = 'wx00000000000000aa';
const APP_SECRET = 'secret-for-api-client-tests-000000';
const SEND = '/cgi-bin/message/custom/send';

let fake: FakeWeChat;
let store: SqliteStore;
let tokens: AccessTokenManager;
let client: WeChatApiClient;
const errorsSeen: unknown[] = [];
const tokensIssued: string[] = [];

function clientFor(baseUrl: string, timeoutMs?: number): WeChatApiClient {
  return createWeChatApiClient({ baseUrl, tokens, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    errorsSeen.push(error);
    return error as Error;
  }
  throw new Error('expected a rejection');
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const hello = buildCustomSendBody({ to: 'oUSER', body: { content: 'Hello 你好 👋' } });

beforeEach(async () => {
  fake = await startFakeWeChat({ appId: APP_ID, appSecret: APP_SECRET });
  store = SqliteStore.open(':memory:');
  tokens = new AccessTokenManager({ appId: APP_ID, appSecret: APP_SECRET, baseUrl: fake.baseUrl, store });
  client = clientFor(fake.baseUrl);
});

afterEach(async () => {
  tokensIssued.push(...fake.issuedTokens);
  await fake.close();
  await store.close();
});

afterAll(() => {
  const text = errorsSeen
    .map((error) => `${String(error)} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`)
    .join('\n');
  expect(errorsSeen.length).toBeGreaterThan(5);
  expect(tokensIssued.length).toBeGreaterThan(5);
  expect(text).not.toContain(APP_SECRET);
  expect(text).not.toContain('access_token=');
  for (const token of tokensIssued) expect(text).not.toContain(token);
});

describe('sending', () => {
  it('posts raw UTF-8 JSON with the shared token', async () => {
    await client.sendCustomMessage(hello);
    const [sent] = await fake.waitForSends(1);
    expect(sent!.path).toBe(SEND);
    expect(sent!.rawBody).toBe('{"touser":"oUSER","msgtype":"text","text":{"content":"Hello 你好 👋"}}');
    expect(sent!.json).toEqual(hello);
    expect(sent!.accessToken).toBe(fake.issuedTokens[0]);
    expect(fake.tokenFetches).toBe(1);
  });

  it('sends typing to custom/typing', async () => {
    await client.sendTyping(buildTypingBody('oUSER', 'Typing'));
    expect(fake.sent.map((s) => [s.path, s.json])).toEqual([
      ['/cgi-bin/message/custom/typing', { touser: 'oUSER', command: 'Typing' }],
    ]);
  });

  it('a refused body surfaces as a permanent error with the errcode (no retry)', async () => {
    const error = await rejection(client.sendCustomMessage({ touser: 'oUSER', msgtype: 'sticker', sticker: {} }));
    expect(error).toBeInstanceOf(WeChatApiError);
    expect((error as WeChatApiError).errcode).toBe(40008);
    expect(fake.requests).toHaveLength(1);
  });
});

describe('token rejection', () => {
  it('40001: exactly one refetch and one retry', async () => {
    fake.inject(SEND, [{ errcode: 40001 }]);
    await client.sendCustomMessage(hello);
    expect(fake.requests).toHaveLength(2);
    expect(fake.sent).toHaveLength(1);
    expect(fake.tokenFetches).toBe(2);
  });

  it('42001 after expiry: retried with the new token', async () => {
    await tokens.getToken();
    fake.expireTokens();
    await client.sendCustomMessage(hello);
    expect(fake.requests.map((r) => r.accessToken)).toEqual([fake.issuedTokens[0], fake.issuedTokens[1]]);
    expect(fake.sent[0]!.accessToken).toBe(fake.issuedTokens[1]);
  });

  it('a second 40001 ends the send for good (never a loop, never hours of silent retries), logged and counted', async () => {
    fake.inject(SEND, [{ errcode: 40001 }, { errcode: 40001 }, { errcode: 40001 }]);
    const { lines, destination } = captureLogs();
    let conflicts = 0;
    const counted = createWeChatApiClient({
      baseUrl: fake.baseUrl,
      tokens,
      logger: createLogger({ level: 'info', destination }),
      onTokenConflict: () => (conflicts += 1),
    });
    const error = await rejection(counted.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(WeChatApiError);
    expect(error).not.toBeInstanceOf(RetryableError);
    expect((error as WeChatApiError).code).toBe('40001');
    expect(error.message).toMatch(/another system is fetching tokens for this AppID/);
    expect(conflicts).toBe(1);
    const errorLines = lines.map((line) => JSON.parse(line) as { level: number; msg: string; errcode?: number }).filter((l) => l.level === 50);
    expect(errorLines).toEqual([expect.objectContaining({ errcode: 40001, msg: expect.stringMatching(/another system/) })]);
    expect(fake.requests).toHaveLength(2);
    expect(fake.tokenFetches).toBe(2);
    expect(fake.sent).toHaveLength(0);
  });

  it('a token that cannot be fetched (40164) fails the send before anything is posted', async () => {
    fake.inject('/cgi-bin/stable_token', [{ errcode: 40164 }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error.message).toMatch(/allowlist/);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('errcodes and HTTP failures', () => {
  it('45015 is permanent with code, errcode, errmsg and a hint, and is not retried', async () => {
    fake.inject(SEND, [{ errcode: 45015 }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(PermanentError);
    expect(error).toBeInstanceOf(WeChatApiError);
    expect((error as WeChatApiError).code).toBe('45015');
    expect((error as WeChatApiError).errcode).toBe(45015);
    expect(error.message).toMatch(/^45015 response out of time limit or subscription is canceled/);
    expect(error.message).toMatch(/user outside the 48-hour window/);
    expect(fake.requests).toHaveLength(1);
  });

  it.each([45047, 43004, 40003, 48001, 40200, 45008, 43019])('%i is permanent', async (errcode) => {
    fake.inject(SEND, [{ errcode, errmsg: 'refused' }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(WeChatApiError);
    expect((error as WeChatApiError).code).toBe(String(errcode));
    expect(error.message.startsWith(`${errcode} refused`)).toBe(true);
    expect(fake.requests).toHaveLength(1);
  });

  it('-1 (system busy) is retryable', async () => {
    fake.inject(SEND, [{ errcode: -1 }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/-1 system error/);
    expect(fake.requests).toHaveLength(1);
  });

  it('HTTP 5xx is retryable', async () => {
    fake.inject(SEND, [{ status: 503 }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/HTTP 503/);
  });
});

describe('delivery uncertainty', () => {
  it('a timeout after the request was sent is uncertain, and WeChat saw exactly one request', async () => {
    await tokens.getToken();
    fake.inject(SEND, [{ delayMs: 1_000 }]);
    const error = await rejection(clientFor(fake.baseUrl, 150).sendCustomMessage(hello));
    expect(error).toBeInstanceOf(UncertainDeliveryError);
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as UncertainDeliveryError).code).toBe('uncertain');
    expect(error.message).toMatch(/timed out after 150 ms after the request was sent/);
    expect(fake.requests).toHaveLength(1);
    expect(fake.sent).toHaveLength(1); // the slow WeChat did deliver it: a retry would have duplicated it
  });

  it('a connection reset while waiting for the answer is uncertain', async () => {
    fake.inject(SEND, [{ reset: true }]);
    const error = await rejection(client.sendCustomMessage(hello));
    expect(error).toBeInstanceOf(UncertainDeliveryError);
    expect(fake.requests).toHaveLength(1);
  });

  it('a 2xx answer that is not JSON is uncertain', async () => {
    const server = createServer((req, res) => {
      if (req.url?.startsWith('/cgi-bin/stable_token')) res.end('{"access_token":"T","expires_in":7200}');
      else res.end('<html>gateway</html>');
    });
    await listen(server);
    try {
      const error = await rejection(clientFor(baseUrlOf(server)).sendCustomMessage(hello));
      expect(error).toBeInstanceOf(UncertainDeliveryError);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a refused connection is retryable (nothing was sent)', async () => {
    await tokens.getToken();
    const error = await rejection(clientFor(`http://127.0.0.1:${await closedPort()}`).sendCustomMessage(hello));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/ECONNREFUSED/);
    expect(error.message).toMatch(/before the request was sent/);
  });

  it('a timeout before the whole request went out is retryable', async () => {
    await tokens.getToken();
    // A peer that accepts the connection but never reads: a large body cannot be handed off.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => {
      socket.pause();
      sockets.push(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const big = buildCustomSendBody({ to: 'oUSER', body: { content: 'x'.repeat(32 * 1024 * 1024) } });
      const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const error = await rejection(clientFor(baseUrl, 300).sendCustomMessage(big));
      expect(error).toBeInstanceOf(RetryableError);
      expect(error.message).toMatch(/timed out after 300 ms before the request was sent/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('scrubSecrets (shared with the logger)', () => {
  it('removes tokens from URLs and JSON, and leaves other text alone', () => {
    expect(scrubSecrets('POST https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=ABC_123-x&x=1')).toBe(
      'POST https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=[REDACTED]&x=1',
    );
    expect(scrubSecrets('url: "/x?a=1&ACCESS_TOKEN=tok#frag"')).toBe('url: "/x?a=1&ACCESS_TOKEN=[REDACTED]#frag"');
    expect(scrubSecrets('{"access_token": "secret-token","expires_in":7200}')).toBe(
      '{"access_token": "[REDACTED]","expires_in":7200}',
    );
    expect(scrubSecrets('nothing to hide')).toBe('nothing to hide');
  });
});

function listen(server: Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
}

function baseUrlOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
