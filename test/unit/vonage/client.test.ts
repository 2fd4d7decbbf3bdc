import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { PermanentError, RetryableError } from '../../../src/errors';
import { createHttpRequester } from '../../../src/outbound-http';
import { createVonageClient, type VonageClient } from '../../../src/vonage/client';
import { createApplicationTokenSource } from '../../../src/vonage/jwt';
import { startFakeVonage, type FakeVonage } from '../../support/fake-vonage';
import { testKeyPair } from '../../support/keys';

const APPLICATION_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const EVENT = { type: 'custom:wechat:message', body: { direction: 'inbound', content: 'hello' } };

describe('Vonage client against the fake Conversation API', () => {
  const { privateKeyPem, publicKeyPem } = testKeyPair();
  const tokenSource = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey: privateKeyPem });
  let fake: FakeVonage;
  let client: VonageClient;
  /** Every error any test saw: none may carry the token. */
  const errors: unknown[] = [];

  async function failure(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (error) {
      errors.push(error);
      return error as Error;
    }
    throw new Error('expected a rejection');
  }

  beforeEach(async () => {
    fake = await startFakeVonage({ publicKeyPem, applicationId: APPLICATION_ID });
    client = createVonageClient({ baseUrl: fake.baseUrl, tokenSource, timeoutMs: 2000 });
  });
  afterEach(async () => {
    await fake.close();
  });
  afterAll(() => {
    const token = tokenSource.token();
    const signature = token.split('.')[2]!;
    expect(errors.length).toBeGreaterThan(10);
    for (const error of errors) {
      const text = `${String(error)}\n${inspect(error, { depth: 20, showHidden: true })}`;
      expect(text).not.toContain(token);
      expect(text).not.toContain(signature);
      expect(text).not.toMatch(/authorization/i);
    }
  });

  test('201 gives the event id; ids progress per conversation; the event arrives as sent', async () => {
    expect(await client.createEvent('CON-1', EVENT)).toEqual({ id: '1' });
    expect(await client.createEvent('CON-1', { ...EVENT, from: 'MEM-9' })).toEqual({ id: '2' });
    expect(await client.createEvent('CON-2', EVENT)).toEqual({ id: '1' });
    expect(fake.events.map((e) => [e.conversationId, e.id, e.from])).toEqual([
      ['CON-1', 1, undefined],
      ['CON-1', 2, 'MEM-9'],
      ['CON-2', 1, undefined],
    ]);
    expect(fake.events[0]).toMatchObject({ type: EVENT.type, body: EVENT.body });
    expect(fake.events[0]!.jwtClaims.application_id).toBe(APPLICATION_ID);
  });

  test('the conversation id is path-encoded and a trailing slash on the base URL is never sent', async () => {
    const slashed = createVonageClient({ baseUrl: `${fake.baseUrl}//`, tokenSource });
    expect(await slashed.createEvent('CON-a/b?c', EVENT)).toEqual({ id: '1' });
    expect(fake.events[0]!.conversationId).toBe('CON-a/b?c');
  });

  test('any 2xx is a success: 200 with an id, 204 without a body', async () => {
    fake.script([{ status: 200, body: { id: 77, type: EVENT.type } }, { status: 204 }]);
    expect(await client.createEvent('CON-1', EVENT)).toEqual({ id: '77' });
    expect(await client.createEvent('CON-1', EVENT)).toEqual({ id: '' });
  });

  test('503 and 500 are retryable', async () => {
    fake.script([{ status: 503 }, { status: 500, body: 'Internal error' }]);
    const e503 = await failure(client.createEvent('CON-1', EVENT));
    expect(e503).toBeInstanceOf(RetryableError);
    expect((e503 as RetryableError).retryAfterMs).toBeUndefined();
    expect(e503.message).toContain('503');
    // A 503 says Vonage did not act on the request; after a 500 the event may exist.
    expect((e503 as RetryableError).refused).toBe(true);
    const e500 = await failure(client.createEvent('CON-1', EVENT));
    expect(e500).toBeInstanceOf(RetryableError);
    expect((e500 as RetryableError).refused).toBe(false);
    expect(fake.events).toHaveLength(0);
    expect(fake.requests).toBe(2);
  });

  test('429 is retryable with Retry-After in seconds, as an HTTP date, or absent', async () => {
    const nowMs = Date.UTC(2026, 10, 21, 12, 0, 0);
    const clocked = createVonageClient({ baseUrl: fake.baseUrl, tokenSource, now: () => nowMs });
    fake.script([
      { status: 429, retryAfter: '2' },
      { status: 429, retryAfter: new Date(nowMs + 7000).toUTCString() },
      { status: 429 },
    ]);
    const seconds = (await failure(clocked.createEvent('CON-1', EVENT))) as RetryableError;
    expect(seconds).toBeInstanceOf(RetryableError);
    expect(seconds.retryAfterMs).toBe(2000);
    expect(seconds.refused).toBe(true);
    const date = (await failure(clocked.createEvent('CON-1', EVENT))) as RetryableError;
    expect(date.retryAfterMs).toBe(7000);
    const absent = (await failure(clocked.createEvent('CON-1', EVENT))) as RetryableError;
    expect(absent).toBeInstanceOf(RetryableError);
    expect(absent.retryAfterMs).toBeUndefined();
  });

  test('400 from validation is permanent with the Vonage code and detail', async () => {
    const badType = (await failure(client.createEvent('CON-1', { type: 'wechat:message', body: {} }))) as PermanentError;
    expect(badType).toBeInstanceOf(PermanentError);
    expect(badType.code).toBe('http:error:validation-fail');
    expect(badType.message).toMatch(/400 http:error:validation-fail: Input validation failure\. \(type: .*\)/);

    const tooBig = (await failure(client.createEvent('CON-1', { type: EVENT.type, body: { content: 'x'.repeat(5000) } }))) as PermanentError;
    expect(tooBig).toBeInstanceOf(PermanentError);
    expect(tooBig.code).toBe('conversation:error:invalid-event');
  });

  test('401 for a token of another application is permanent', async () => {
    const foreign = createApplicationTokenSource({ applicationId: 'someone-else', privateKey: privateKeyPem });
    const other = createVonageClient({ baseUrl: fake.baseUrl, tokenSource: foreign });
    const error = (await failure(other.createEvent('CON-1', EVENT))) as PermanentError;
    expect(error).toBeInstanceOf(PermanentError);
    expect(error.code).toBe('system:error:invalid-token');
    expect(error.message).toContain('401');
    const foreignToken = foreign.token();
    expect(inspect(error, { depth: 20 })).not.toContain(foreignToken);
  });

  test('404 and the legacy {code, description} shape are permanent with their code', async () => {
    fake.script([
      { status: 404 },
      { status: 403, body: { code: 'conversation:error:not-allowed', description: 'Conversation is INACTIVE' } },
      { status: 422, body: '<html>nope</html>' },
    ]);
    const notFound = (await failure(client.createEvent('CON-404', EVENT))) as PermanentError;
    expect(notFound).toBeInstanceOf(PermanentError);
    expect(notFound.code).toBe('conversation:error:not-found');
    expect(notFound.message).toContain('404 conversation:error:not-found: Conversation does not exist');

    const legacy = (await failure(client.createEvent('CON-1', EVENT))) as PermanentError;
    expect(legacy.code).toBe('conversation:error:not-allowed');
    expect(legacy.message).toContain('403 conversation:error:not-allowed: Conversation is INACTIVE');

    const opaque = (await failure(client.createEvent('CON-1', EVENT))) as PermanentError;
    expect(opaque).toBeInstanceOf(PermanentError);
    expect(opaque.code).toBe('http:422');
  });

  test('a response slower than timeoutMs is retryable', async () => {
    const impatient = createVonageClient({ baseUrl: fake.baseUrl, tokenSource, timeoutMs: 100 });
    fake.script([{ delayMs: 1000 }]);
    const error = await failure(impatient.createEvent('CON-1', EVENT));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toMatch(/no answer within 100 ms/);
    expect((error as RetryableError).refused).toBe(false);
  });

  test('a reset connection is retryable', async () => {
    fake.script([{ reset: true }]);
    const error = await failure(client.createEvent('CON-1', EVENT));
    expect(error).toBeInstanceOf(RetryableError);
    expect(fake.requests).toBe(1);
    expect((error as RetryableError).refused).toBe(false);
    // and the next request goes through
    expect(await client.createEvent('CON-1', EVENT)).toEqual({ id: '1' });
  });

  test('a refused connection is retryable', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const refused = createVonageClient({ baseUrl: `http://127.0.0.1:${port}/v1`, tokenSource });
    const error = await failure(refused.createEvent('CON-1', EVENT));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toContain('ECONNREFUSED');
    expect((error as RetryableError).refused).toBe(true);
  });

  test('a DNS failure is retryable', async () => {
    const noDns = createHttpRequester({
      lookup: (_host, _options, callback) =>
        callback(Object.assign(new Error('getaddrinfo ENOTFOUND api.example.invalid'), { code: 'ENOTFOUND' }), ''),
    });
    const unresolvable = createVonageClient({ baseUrl: 'http://api.example.invalid/v1', tokenSource, http: noDns });
    const error = await failure(unresolvable.createEvent('CON-1', EVENT));
    expect(error).toBeInstanceOf(RetryableError);
    expect(error.message).toContain('ENOTFOUND');
    expect(error.message).not.toContain('api.example.invalid');
    expect((error as RetryableError).refused).toBe(true);
    noDns.close();
  });

  test('local problems are permanent: empty conversation id, a token that cannot be made', async () => {
    expect(await failure(client.createEvent('', EVENT))).toBeInstanceOf(PermanentError);
    const broken = createVonageClient({
      baseUrl: fake.baseUrl,
      tokenSource: {
        token() {
          throw new Error('secretOrPrivateKey must be an asymmetric key');
        },
      },
    });
    const error = (await failure(broken.createEvent('CON-1', EVENT))) as PermanentError;
    expect(error).toBeInstanceOf(PermanentError);
    expect(error.code).toBe('local:token');
    expect(fake.requests).toBe(0);
  });

  test('list events reads both answer shapes: _embedded.events (the live API) and a bare _embedded array', async () => {
    await client.createEvent('CON-1', EVENT);
    const fromEmulator = await client.listRecentEvents('CON-1');
    expect(fromEmulator.events.map((e) => [e.id, e.type])).toEqual([['1', EVENT.type]]);

    const arrayShape = http.createServer((_req, res) => {
      const page = { page_size: 100, _embedded: [{ id: 7, type: 'custom:wechat:message', body: { a: 1 }, timestamp: '2026-12-02T10:00:00.000Z' }], _links: {} };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page));
    });
    await new Promise<void>((resolve) => arrayShape.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = arrayShape.address() as AddressInfo;
      const other = createVonageClient({ baseUrl: `http://127.0.0.1:${port}/v1`, tokenSource });
      const page = await other.listRecentEvents('CON-1');
      expect(page.events).toEqual([{ id: '7', type: 'custom:wechat:message', body: { a: 1 }, from: undefined, timestamp: Date.parse('2026-12-02T10:00:00.000Z') }]);
      expect(page.nextCursor).toBeUndefined();
    } finally {
      await new Promise<void>((resolve) => arrayShape.close(() => resolve()));
    }
  });

  test('an invalid base URL is refused at construction', () => {
    expect(() => createVonageClient({ baseUrl: 'not a url', tokenSource })).toThrow(/base URL/);
    expect(() => createVonageClient({ baseUrl: 'ftp://example.com/v1', tokenSource })).toThrow(/base URL/);
  });
});
