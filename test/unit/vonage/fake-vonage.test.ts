/**
 * The fake Conversation API is what every Vonage-facing integration test trusts, so its own
 * behaviour is pinned here with raw HTTP (no client of ours in between).
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { startFakeVonage, type FakeVonage } from '../../support/fake-vonage';
import { testKeyPair } from '../../support/keys';
import { sleep } from '../../support/wait';

const APPLICATION_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const { privateKeyPem, publicKeyPem } = testKeyPair();

function token(claims: Record<string, unknown> = {}, key: string = privateKeyPem): string {
  const iat = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { application_id: APPLICATION_ID, iat, jti: crypto.randomUUID(), exp: iat + 900, ...claims };
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
  return jwt.sign(payload, key, { algorithm: 'RS256' });
}

/** `bearer` null sends no Authorization header. */
async function post(url: string, body: unknown, bearer: string | null = token()) {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

const EVENT = { type: 'custom:wechat:message', body: { content: 'hi' } };

describe('fake Vonage Conversation API', () => {
  let fake: FakeVonage;
  beforeEach(async () => {
    fake = await startFakeVonage({ publicKeyPem, applicationId: APPLICATION_ID });
  });
  afterEach(async () => {
    await fake.close();
  });

  test('accepts a custom event with 201 and the documented response shape', async () => {
    const res = await post(`${fake.baseUrl}/conversations/CON-1/events`, { ...EVENT, from: 'MEM-1' });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: 1, type: EVENT.type, from: 'MEM-1', body: EVENT.body });
    expect(new Date(String(res.json!.timestamp)).toISOString()).toBe(res.json!.timestamp);
    expect(res.json!._links).toEqual({ self: { href: `${fake.baseUrl}/conversations/CON-1/events/1` } });
    expect(fake.events).toHaveLength(1);
    expect(fake.events[0]).toMatchObject({ conversationId: 'CON-1', id: 1, from: 'MEM-1', type: EVENT.type, body: EVENT.body });
    expect(fake.events[0]!.jwtClaims.application_id).toBe(APPLICATION_ID);
  });

  test('ids are progressive per conversation; /beta is tolerated', async () => {
    const beta = fake.baseUrl.replace(/\/v1$/, '/beta');
    expect((await post(`${fake.baseUrl}/conversations/A/events`, EVENT)).json!.id).toBe(1);
    expect((await post(`${beta}/conversations/A/events`, EVENT)).json!.id).toBe(2);
    expect((await post(`${fake.baseUrl}/conversations/B/events`, EVENT)).json!.id).toBe(1);
  });

  test('refuses tokens Vonage would refuse with 401 system:error:invalid-token', async () => {
    const url = `${fake.baseUrl}/conversations/CON-1/events`;
    const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const iat = Math.floor(Date.now() / 1000);
    const cases = [
      null,
      'not-a-jwt',
      token({ application_id: 'another-app' }),
      token({ jti: undefined }),
      token({ exp: undefined }),
      token({ exp: iat + 86_401 }),
      token({}, otherKey),
      jwt.sign({ application_id: APPLICATION_ID, iat, jti: 'x', exp: iat + 60 }, 'hmac-secret', { algorithm: 'HS256' }),
    ];
    for (const bearer of cases) {
      const res = await post(url, EVENT, bearer);
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ code: 'system:error:invalid-token', title: 'Unauthorized.' });
      expect(res.json).toHaveProperty('instance');
    }
    const expired = await post(url, EVENT, token({ iat: iat - 1000, exp: iat - 100 }));
    expect(expired.status).toBe(401);
    expect(expired.json!.code).toBe('system:error:expired-token');
    expect(fake.events).toHaveLength(0);
    expect(fake.requests).toBe(cases.length + 1);
  });

  test('validates the custom event', async () => {
    const url = `${fake.baseUrl}/conversations/CON-1/events`;
    for (const bad of [
      { body: {} },
      { type: 'wechat:message', body: {} },
      { type: 'custom:has space', body: {} },
      { type: `custom:${'x'.repeat(94)}`, body: {} },
      { type: 'custom:x' },
      { type: 'custom:x', body: [] },
      { type: 'custom:x', body: 'text' },
    ]) {
      const res = await post(url, bad);
      expect(res.status).toBe(400);
      expect(res.json!.code).toBe('http:error:validation-fail');
    }
    expect((await post(url, '{not json')).status).toBe(400);

    // 4096 bytes of serialised body, counted in UTF-8
    const fits = { content: 'x'.repeat(4096 - '{"content":""}'.length) };
    expect((await post(url, { type: 'custom:x', body: fits })).status).toBe(201);
    const tooBig = { content: `${'x'.repeat(4096 - '{"content":""}'.length - 1)}é` };
    const res = await post(url, { type: 'custom:x', body: tooBig });
    expect(res.status).toBe(400);
    expect(res.json!.code).toBe('conversation:error:invalid-event');
    expect((await post(url, { type: `custom:${'x'.repeat(93)}`, body: {} })).status).toBe(201);
  });

  test('trailing slashes and unknown routes are 404 in Vonage error shape', async () => {
    for (const url of [
      `${fake.baseUrl}/conversations/CON-1/events/`,
      `${fake.baseUrl}/conversations/CON-1/`,
      `${fake.baseUrl}/users`,
      fake.baseUrl.replace(/\/v1$/, '/v2/conversations/CON-1/events'),
    ]) {
      const res = await post(url, EVENT);
      expect(res.status).toBe(404);
      expect(res.json).toMatchObject({ code: 'http:error:not-found', title: 'Not found.' });
    }
    const del = await fetch(`${fake.baseUrl}/conversations/CON-1/events`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    await del.text();
  });

  test('script: statuses with Retry-After and bodies, then normal handling resumes', async () => {
    fake.script([{ status: 429, retryAfter: '3' }, { status: 503 }, { status: 200, body: { id: 99 } }]);
    const url = `${fake.baseUrl}/conversations/CON-1/events`;
    const limited = await post(url, EVENT);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('3');
    expect((await post(url, EVENT)).status).toBe(503);
    expect((await post(url, EVENT)).json).toEqual({ id: 99 });
    expect((await post(url, EVENT)).status).toBe(201);
    expect(fake.events).toHaveLength(1);
    expect(fake.requests).toBe(4);
  });

  test('script: reset destroys the connection; delay then handles normally', async () => {
    const url = `${fake.baseUrl}/conversations/CON-1/events`;
    fake.script([{ reset: true }, { delayMs: 20 }]);
    await expect(post(url, EVENT)).rejects.toThrow();
    const delayed = await post(url, EVENT);
    expect(delayed.status).toBe(201);
    expect(fake.events).toHaveLength(1);
  });

  test('waitForEvents resolves once enough events arrived, and rejects on timeout', async () => {
    const waiting = fake.waitForEvents(2);
    await post(`${fake.baseUrl}/conversations/CON-1/events`, EVENT);
    await post(`${fake.baseUrl}/conversations/CON-1/events`, EVENT);
    expect(await waiting).toHaveLength(2);
    expect(await fake.waitForEvents(1)).toHaveLength(2);
    await expect(fake.waitForEvents(3, 50)).rejects.toThrow(/expected 3 events/);
  });

  test('close ends pending delays and waiters', async () => {
    fake.script([{ delayMs: 60_000 }]);
    const pending = post(`${fake.baseUrl}/conversations/CON-1/events`, EVENT).catch((error: unknown) => error);
    const waiting = fake.waitForEvents(1, 60_000).catch((error: unknown) => error);
    while (fake.requests === 0) await sleep(5);
    await fake.close();
    expect(await waiting).toBeInstanceOf(Error);
    // fetch's TypeError comes from another realm under jest, so match its shape, not its class
    expect(await pending).toMatchObject({ message: 'fetch failed' });
    expect(fake.events).toHaveLength(0);
  });
});
