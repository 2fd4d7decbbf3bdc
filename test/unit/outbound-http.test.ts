/**
 * The one outbound HTTP requester, against real loopback servers: answers of any status, keep-alive,
 * the whole-exchange deadline, the size limit, the pool's bound, and failures that tell sent from not
 * sent without ever naming the URL (WeChat's access token rides in its query) or a header.
 */
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { inspect } from 'node:util';
import { ignoredProxySettings } from '../../src/node-version';
import { createHttpRequester, HttpRequestFailure, type HttpRequest, type HttpRequester } from '../../src/outbound-http';

const SECRET = 'SECRET-token-4f7a';
const HEADER_SECRET = 'HEADER-jwt-9c1e';

interface TestServer {
  url: (path?: string) => string;
  /** 'connection' events seen. */
  connections: number;
  /** The most sockets open at once. */
  maxOpen: number;
  open: Set<Socket>;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
const requesters: HttpRequester[] = [];
/** Every failure any test saw: none may hold the URL's secret or a header's. */
const failures: unknown[] = [];

async function startServer(handler: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(handler);
  const open = new Set<Socket>();
  const state: TestServer = {
    url: (path = '/') => `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    connections: 0,
    maxOpen: 0,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket) => {
    state.connections += 1;
    open.add(socket);
    state.maxOpen = Math.max(state.maxOpen, open.size);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(state);
  return state;
}

function requester(options: Parameters<typeof createHttpRequester>[0] = {}): HttpRequester {
  const made = createHttpRequester(options);
  requesters.push(made);
  return made;
}

function post(url: string, more: Partial<HttpRequest> = {}): HttpRequest {
  return {
    method: 'POST',
    url: `${url}?access_token=${SECRET}`,
    headers: { Authorization: `Bearer ${HEADER_SECRET}`, 'Content-Type': 'application/json' },
    body: '{"hello":"世界"}',
    timeoutMs: 2_000,
    maxResponseBytes: 1024,
    ...more,
  };
}

async function failure(promise: Promise<unknown>): Promise<HttpRequestFailure> {
  try {
    await promise;
  } catch (error) {
    failures.push(error);
    expect(error).toBeInstanceOf(HttpRequestFailure);
    return error as HttpRequestFailure;
  }
  throw new Error('expected a rejection');
}

afterEach(async () => {
  for (const made of requesters.splice(0)) made.close();
  for (const server of servers.splice(0)) await server.close();
});

afterAll(() => {
  expect(failures.length).toBeGreaterThanOrEqual(8);
  for (const error of failures) {
    const text = `${String(error)}\n${(error as Error).stack ?? ''}\n${inspect(error, { depth: 20, showHidden: true })}`;
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain('access_token');
    expect(text).not.toContain(HEADER_SECRET);
    expect(text).not.toContain('127.0.0.1');
  }
});

test('answers any status with its body (UTF-8) and headers; sends the method, headers and body; follows no redirect', async () => {
  const seen: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = await startServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (req.url?.startsWith('/moved')) res.writeHead(302, { Location: '/elsewhere' }).end();
      else res.writeHead(418, { 'Retry-After': '7', 'X-Thing': 'a' }).end('茶 ☕ teapot');
    });
  });
  const client = requester();

  const answer = await client.request(post(server.url('/brew')));
  expect(answer.status).toBe(418);
  expect(answer.text).toBe('茶 ☕ teapot');
  expect(answer.headers['retry-after']).toBe('7');
  expect(answer.headers['x-thing']).toBe('a');
  expect(seen[0]).toMatchObject({ method: 'POST', url: `/brew?access_token=${SECRET}`, body: '{"hello":"世界"}' });
  expect(seen[0]!.headers).toMatchObject({ authorization: `Bearer ${HEADER_SECRET}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength('{"hello":"世界"}')) });

  const moved = await client.request({ method: 'GET', url: server.url('/moved'), timeoutMs: 2_000, maxResponseBytes: 1024 });
  expect(moved).toMatchObject({ status: 302, text: '' });
  expect(moved.headers.location).toBe('/elsewhere');
  expect(seen.map((s) => s.url)).toEqual([`/brew?access_token=${SECRET}`, '/moved']);
  expect(seen[1]).toMatchObject({ method: 'GET', body: '' });
});

test('keep-alive: sequential requests reuse one connection', async () => {
  const server = await startServer((_req, res) => res.end('ok'));
  const client = requester();
  for (let i = 0; i < 5; i += 1) {
    expect((await client.request(post(server.url()))).text).toBe('ok');
  }
  expect(server.connections).toBe(1);
});

test('a server that never answers: timed out, after the request was sent, within the deadline', async () => {
  const server = await startServer(() => undefined);
  const client = requester();
  const started = Date.now();
  const error = await failure(client.request(post(server.url('/never'), { timeoutMs: 150 })));
  expect(Date.now() - started).toBeLessThan(1_500);
  expect(error).toMatchObject({ code: 'timeout', timedOut: true, requestSent: true });
  expect(error.message).toBe('no answer within 150 ms, after the request was sent');
  // The request's socket is destroyed, not left to the server.
  await waitFor(() => server.open.size === 0);
});

test('the idle sockets\' lifetime does not cut a slow answer short: only the deadline does', async () => {
  const server = await startServer((_req, res) => {
    setTimeout(() => res.end('late but in time'), 200);
  });
  const answer = await requester({ keepAliveMs: 50 }).request(post(server.url(), { timeoutMs: 2_000 }));
  expect(answer.text).toBe('late but in time');
});

test('an answer that trickles past the deadline is cut off as timed out', async () => {
  const server = await startServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('partial');
  });
  const error = await failure(requester().request(post(server.url(), { timeoutMs: 150 })));
  expect(error).toMatchObject({ code: 'timeout', timedOut: true, requestSent: true });
});

test('a refused connection: not sent, ECONNREFUSED', async () => {
  const server = await startServer(() => undefined);
  const url = server.url('/closed');
  await server.close();
  servers.splice(0);
  const error = await failure(requester().request(post(url)));
  expect(error).toMatchObject({ code: 'ECONNREFUSED', requestSent: false, timedOut: false });
  expect(error.message).toBe('ECONNREFUSED, before the request was sent');
});

test('a DNS failure (from the lookup option): not sent, with its code', async () => {
  const client = requester({
    lookup: (_host, _options, callback) => callback(Object.assign(new Error('getaddrinfo ENOTFOUND api.example.invalid'), { code: 'ENOTFOUND' }), ''),
  });
  const error = await failure(client.request(post('http://api.example.invalid/cgi-bin/x')));
  expect(error).toMatchObject({ code: 'ENOTFOUND', requestSent: false, timedOut: false });
  expect(error.message).not.toContain('example.invalid');
});

test('a server that drops the connection after reading the request: sent, ECONNRESET', async () => {
  const server = await startServer((req) => {
    req.resume();
    req.on('end', () => req.socket.destroy());
  });
  const error = await failure(requester().request(post(server.url('/drop'))));
  expect(error).toMatchObject({ code: 'ECONNRESET', requestSent: true, timedOut: false });
});

test('an answer cut off in the middle of its body: sent, ECONNRESET', async () => {
  const server = await startServer((_req, res) => {
    res.writeHead(200, { 'Content-Length': '100' });
    res.write('only part', () => res.socket?.destroy());
  });
  const error = await failure(requester().request(post(server.url())));
  expect(error).toMatchObject({ code: 'ECONNRESET', requestSent: true, timedOut: false });
});

test('an answer larger than maxResponseBytes fails, whether its length is declared or chunked', async () => {
  const server = await startServer((req, res) => {
    if (req.url?.startsWith('/declared')) {
      res.writeHead(200, { 'Content-Length': '2048' }).end('x'.repeat(2048));
      return;
    }
    // Chunked: no length up front, the limit is found while reading.
    res.writeHead(200);
    res.write('x'.repeat(600));
    setTimeout(() => res.end('y'.repeat(600)), 20);
  });
  const client = requester();
  const declared = await failure(client.request(post(server.url('/declared'))));
  expect(declared).toMatchObject({ code: 'ERR_RESPONSE_TOO_LARGE', requestSent: true, timedOut: false });
  expect(declared.message).toContain('1024 bytes');
  const chunked = await failure(client.request(post(server.url('/chunked'))));
  expect(chunked).toMatchObject({ code: 'ERR_RESPONSE_TOO_LARGE', requestSent: true, timedOut: false });
  // Exactly at the limit is fine.
  expect((await client.request(post(server.url('/chunked'), { maxResponseBytes: 1200 }))).text).toHaveLength(1200);
});

test('a bad URL: ERR_INVALID_URL, nothing sent, the URL not repeated', async () => {
  const client = requester();
  const bad = await failure(client.request(post('not a url')));
  expect(bad).toMatchObject({ code: 'ERR_INVALID_URL', requestSent: false, timedOut: false });
  const ftp = await failure(client.request(post('ftp://127.0.0.1/file')));
  expect(ftp).toMatchObject({ code: 'ERR_INVALID_URL', requestSent: false });
});

test('a header value Node will not write: fails before anything is sent, the value not repeated', async () => {
  const server = await startServer((_req, res) => res.end('ok'));
  const error = await failure(requester().request(post(server.url(), { headers: { Authorization: `Bearer ${HEADER_SECRET}\nInjected: 1` } })));
  expect(error).toMatchObject({ code: 'ERR_INVALID_CHAR', requestSent: false, timedOut: false });
  expect(server.connections).toBe(0);
});

test('at most maxSockets connections at once; the other requests wait for one and all are answered', async () => {
  const server = await startServer((_req, res) => {
    setTimeout(() => res.end('done'), 30);
  });
  const client = requester({ maxSockets: 3 });
  const answers = await Promise.all(Array.from({ length: 12 }, () => client.request(post(server.url()))));
  expect(answers.map((a) => a.text)).toEqual(Array(12).fill('done'));
  expect(server.maxOpen).toBe(3);
  expect(server.connections).toBe(3);
});

test('close() ends the pooled sockets; a later request opens a new one', async () => {
  const server = await startServer((_req, res) => res.end('ok'));
  const client = requester();
  await client.request(post(server.url()));
  expect(server.open.size).toBe(1);
  client.close();
  await waitFor(() => server.open.size === 0);
  expect((await client.request(post(server.url()))).text).toBe('ok');
  expect(server.connections).toBe(2);
});

test('HTTP_PROXY in its environment sends the request through the proxy', async () => {
  const seen: string[] = [];
  const proxy = await startServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end('via proxy');
  });
  const client = requester({ proxyEnv: { HTTP_PROXY: proxy.url('') } });
  const answer = await client.request({ method: 'GET', url: 'http://api.example.test/v1/x', timeoutMs: 2_000, maxResponseBytes: 1024 });
  expect(answer.text).toBe('via proxy');
  expect(seen).toEqual(['GET http://api.example.test/v1/x']);
});

test('without a proxy in its environment it connects directly', async () => {
  const server = await startServer((_req, res) => res.end('direct'));
  const client = requester({ proxyEnv: {} });
  expect((await client.request(post(server.url()))).text).toBe('direct');
});

test('every request names the bridge in its User-Agent, unless the caller names another', async () => {
  const agents: Array<string | undefined> = [];
  const server = await startServer((req, res) => {
    agents.push(req.headers['user-agent']);
    res.end('ok');
  });
  const client = requester();
  await client.request(post(server.url()));
  await client.request({ ...post(server.url()), headers: { 'user-agent': 'probe/1' } });
  expect(agents).toEqual(['wechat-conversation-bridge', 'probe/1']);
});

test('proxy variables an older Node.js would ignore are named, so that the bridge can warn at start', () => {
  const env = { HTTPS_PROXY: 'http://proxy:3128', http_proxy: '', NO_PROXY: 'localhost' };
  expect(ignoredProxySettings(env, '24.4.1')).toEqual(['HTTPS_PROXY']);
  expect(ignoredProxySettings(env, 'v22.13.0')).toEqual(['HTTPS_PROXY']);
  expect(ignoredProxySettings(env, '24.5.0')).toEqual([]);
  expect(ignoredProxySettings(env, '25.0.0')).toEqual([]);
  expect(ignoredProxySettings({}, '22.13.0')).toEqual([]);
});

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
