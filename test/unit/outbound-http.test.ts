import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { createHttpRequester, HttpRequestFailure, type HttpRequester } from '../../src/outbound-http';
import { freePort } from '../support/net';

/** A loopback server with a handler per test, counting the connections it accepted and has open. */
async function startServer(handler: http.RequestListener) {
  let connections = 0;
  let open = 0;
  let mostOpen = 0;
  const server = http.createServer(handler);
  server.on('connection', (socket) => {
    connections += 1;
    open += 1;
    mostOpen = Math.max(mostOpen, open);
    socket.on('close', () => (open -= 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    mostOpen: () => mostOpen,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

async function failureOf(promise: Promise<unknown>): Promise<HttpRequestFailure> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(HttpRequestFailure);
    return error as HttpRequestFailure;
  }
  throw new Error('expected the request to fail');
}

const SECRET = 'ACCESS_TOKEN_SECRET_123';

describe('createHttpRequester', () => {
  let requester: HttpRequester;
  const servers: Array<{ close(): Promise<void> }> = [];

  beforeEach(() => {
    requester = createHttpRequester({ maxSockets: 4 });
  });
  afterEach(async () => {
    requester.close();
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  const serve = async (handler: http.RequestListener) => {
    const server = await startServer(handler);
    servers.push(server);
    return server;
  };
  const post = (url: string, extra: { timeoutMs?: number; maxResponseBytes?: number } = {}) =>
    requester.request({ method: 'POST', url, body: '{"a":1}', headers: { 'Content-Type': 'application/json' }, timeoutMs: extra.timeoutMs ?? 5000, maxResponseBytes: extra.maxResponseBytes ?? 1024 });

  test('answers any status with its headers and body, and sends the body with its length', async () => {
    const server = await serve((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => res.writeHead(429, { 'Retry-After': '7', 'Content-Type': 'application/json' }).end(JSON.stringify({ got: body, length: req.headers['content-length'] })));
    });
    const answer = await post(`${server.url}/x?access_token=${SECRET}`);
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('7');
    expect(JSON.parse(answer.text)).toEqual({ got: '{"a":1}', length: '7' });
  });

  test('a 3xx is an answer, not followed', async () => {
    const server = await serve((_req, res) => res.writeHead(302, { Location: 'http://127.0.0.1:9/' }).end());
    expect((await post(server.url)).status).toBe(302);
  });

  test('keeps connections alive: sequential requests share one socket', async () => {
    const server = await serve((_req, res) => res.end('ok'));
    for (let i = 0; i < 5; i += 1) expect((await post(server.url)).text).toBe('ok');
    expect(server.connections()).toBe(1);
  });

  test('at most maxSockets connections per origin, however many requests are in flight', async () => {
    const server = await serve((_req, res) => setTimeout(() => res.end('ok'), 20));
    const answers = await Promise.all(Array.from({ length: 20 }, () => post(server.url)));
    expect(answers.every((answer) => answer.text === 'ok')).toBe(true);
    expect(server.mostOpen()).toBeLessThanOrEqual(4);
  });

  test('no answer within the deadline: timed out, the request had been sent, and the URL is nowhere in the error', async () => {
    const server = await serve(() => undefined); // reads the request, never answers
    const failure = await failureOf(post(`${server.url}/cgi-bin/message/custom/send?access_token=${SECRET}`, { timeoutMs: 100 }));
    expect(failure).toMatchObject({ timedOut: true, requestSent: true, code: 'timeout' });
    expect(`${failure.message} ${failure.stack ?? ''} ${inspect(failure)}`).not.toContain(SECRET);
  });

  test('a slow trickle of answer bytes is still bounded by the one deadline', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200);
      const drip = setInterval(() => res.write('.'), 20);
      res.on('close', () => clearInterval(drip));
    });
    const failure = await failureOf(post(server.url, { timeoutMs: 150 }));
    expect(failure.timedOut).toBe(true);
  });

  test('a refused connection: never sent, ECONNREFUSED', async () => {
    const port = await freePort();
    const failure = await failureOf(post(`http://127.0.0.1:${port}/?access_token=${SECRET}`));
    expect(failure).toMatchObject({ requestSent: false, timedOut: false, code: 'ECONNREFUSED' });
    expect(`${failure.message} ${failure.stack ?? ''}`).not.toContain(SECRET);
  });

  test('a connection dropped after the request was read: sent, reset', async () => {
    const server = await serve((req) => req.on('end', () => req.socket.destroy()).resume());
    const failure = await failureOf(post(server.url));
    expect(failure.requestSent).toBe(true);
    expect(failure.timedOut).toBe(false);
    expect(failure.code).toBe('ECONNRESET');
  });

  test('an answer larger than maxResponseBytes fails, declared or chunked', async () => {
    const declared = await serve((_req, res) => res.writeHead(200, { 'Content-Length': '5000' }).end('x'.repeat(5000)));
    expect((await failureOf(post(declared.url))).code).toBe('ERR_RESPONSE_TOO_LARGE');
    const chunked = await serve((_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < 10; i += 1) res.write('x'.repeat(500));
      res.end();
    });
    expect((await failureOf(post(chunked.url))).code).toBe('ERR_RESPONSE_TOO_LARGE');
  });

  test('a URL that is not http(s) fails at once, naming no URL', async () => {
    const failure = await failureOf(post(`ftp://example.com/?access_token=${SECRET}`));
    expect(failure).toMatchObject({ requestSent: false, code: 'ERR_INVALID_URL' });
    expect(failure.message).not.toContain(SECRET);
  });

  test('a header value Node will not write fails before anything is sent', async () => {
    const server = await serve((_req, res) => res.end('ok'));
    const failure = await failureOf(requester.request({ method: 'GET', url: server.url, headers: { Authorization: 'Bearer a\nb' }, timeoutMs: 1000, maxResponseBytes: 1024 }));
    expect(failure.requestSent).toBe(false);
    expect(server.connections()).toBe(0);
  });
});

describe('createHttpRequester behind a proxy', () => {
  test('HTTP_PROXY in its environment sends the request through the proxy', async () => {
    const seen: string[] = [];
    const proxy = await startServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end('via proxy');
    });
    const requester = createHttpRequester({ proxyEnv: { HTTP_PROXY: proxy.url } });
    try {
      const answer = await requester.request({ method: 'GET', url: 'http://api.example.test/v1/x', timeoutMs: 2000, maxResponseBytes: 1024 });
      expect(answer.text).toBe('via proxy');
      expect(seen).toEqual(['GET http://api.example.test/v1/x']);
    } finally {
      requester.close();
      await proxy.close();
    }
  });
});
