/**
 * The Vonage Conversation API emulator on its own, over raw HTTP: the resources beyond events
 * (conversations, users, members, event lists with cursors), Client SDK user tokens, and the
 * dispatch of every event to the RTC event_url: signed as the bridge verifies it, echoes included,
 * retried on 5xx.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { startVonageEmulator, type VonageEmulator } from '../../../src/sandbox/vonage/emulator';
import { verifyVonageWebhookSignature } from '../../../src/vonage/webhook';
import { testKeyPair } from '../../support/keys';

const APPLICATION_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const SECRET = 'signature-secret-for-tests';
const { privateKeyPem, publicKeyPem } = testKeyPair();

function appToken(claims: Record<string, unknown> = {}): string {
  const iat = Math.floor(Date.now() / 1000);
  return jwt.sign({ application_id: APPLICATION_ID, iat, jti: crypto.randomUUID(), exp: iat + 900, ...claims }, privateKeyPem, { algorithm: 'RS256' });
}
const userToken = (name: string) => appToken({ sub: name, acl: { paths: { '/*/conversations/**': {} } } });

interface Link {
  href: string;
}

/** The parts of the emulator's answers these tests read (each read is checked by the assertion that makes it). */
interface Answer {
  id: string | number;
  code: string;
  type: string;
  name: string;
  from: string;
  page_size: number;
  invalid_parameters: unknown;
  _links: { self: Link; first: Link; next: Link; prev: Link };
  _embedded: { conversations: Array<{ id: string }>; users: Array<{ id: string; name: string }>; members: Array<{ id: string }>; events: Array<{ id: number; type: string; body: unknown }> };
}

async function call(emulator: VonageEmulator, method: string, path: string, body?: unknown, bearer: string | null = appToken()) {
  const headers: Record<string, string> = {};
  if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const url = path.startsWith('http') ? path : `${emulator.baseUrl}${path}`;
  const response = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await response.text();
  return { status: response.status, json: (text ? JSON.parse(text) : undefined) as Answer };
}

/** A stand-in for the application's event_url. */
async function startEventUrl(respond: (n: number) => number) {
  const received: Array<{ authorization: string | undefined; raw: Buffer; json: Record<string, unknown> }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      received.push({ authorization: req.headers.authorization, raw, json: JSON.parse(raw.toString('utf8')) });
      res.writeHead(respond(received.length), { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/rtcEvent`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('Vonage emulator: resources', () => {
  let vonage: VonageEmulator;
  beforeEach(async () => {
    vonage = await startVonageEmulator({ publicKeyPem, applicationId: APPLICATION_ID });
  });
  afterEach(() => vonage.close());

  test.each([
    ['/conversations', { name: 'n'.repeat(101) }, 'name'],
    ['/conversations', { display_name: 'd'.repeat(51) }, 'display_name'],
    ['/conversations', { image_url: `https://example.com/${'i'.repeat(2048)}` }, 'image_url'],
    ['/conversations', { image_url: 'not a url' }, 'image_url'],
    ['/users', { name: 'u'.repeat(101) }, 'name'],
    ['/users', { name: 'ok', display_name: 'd'.repeat(51) }, 'display_name'],
  ])('documented limits: POST %s %j is 400 validation-fail naming the field', async (path, body, field) => {
    const refused = await call(vonage, 'POST', path, body);
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({
      type: 'https://developer.nexmo.com/api/conversation#http:error:validation-fail',
      title: 'Bad request.',
      code: 'http:error:validation-fail',
      detail: expect.any(String),
      invalid_parameters: [{ name: field, reason: expect.any(String) }],
    });
  });

  test('documented limits: the longest accepted values are accepted', async () => {
    const at = await call(vonage, 'POST', '/conversations', { name: 'n'.repeat(100), display_name: 'd'.repeat(50), image_url: `https://e.com/${'i'.repeat(2034)}` });
    expect(at.status).toBe(201);
    expect((await call(vonage, 'POST', '/users', { name: 'u'.repeat(100), display_name: 'd'.repeat(50) })).status).toBe(201);
  });

  test('conversations: create (201), duplicate name (409), get, 404, list with _embedded', async () => {
    const created = await call(vonage, 'POST', '/conversations', { name: 'support', display_name: 'Support' });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: 'support', display_name: 'Support', state: 'ACTIVE' });
    expect(created.json.id).toMatch(/^CON-[0-9a-f-]{36}$/);
    expect(created.json._links.self.href).toBe(`${vonage.baseUrl}/conversations/${created.json.id}`);

    const duplicate = await call(vonage, 'POST', '/conversations', { name: 'support' });
    expect(duplicate.status).toBe(409);
    expect(duplicate.json).toMatchObject({ code: 'conversation:error:duplicate-name', title: expect.any(String), detail: expect.any(String) });
    expect(duplicate.json.type).toBe('https://developer.nexmo.com/api/conversation#conversation:error:duplicate-name');

    const unnamed = await call(vonage, 'POST', '/conversations', undefined);
    expect(unnamed.status).toBe(201);
    expect(unnamed.json.name).toMatch(/^NAM-/);

    expect((await call(vonage, 'GET', `/conversations/${created.json.id}`)).json).toEqual(created.json);
    const missing = await call(vonage, 'GET', '/conversations/CON-00000000-0000-0000-0000-000000000000');
    expect(missing.status).toBe(404);
    expect(missing.json.code).toBe('conversation:error:not-found');

    const list = await call(vonage, 'GET', '/conversations');
    expect(list.json.page_size).toBe(10);
    expect(list.json._embedded.conversations.map((c: { id: string }) => c.id)).toEqual([created.json.id, unnamed.json.id]);
    expect(list.json._links.first.href).toBe(`${vonage.baseUrl}/conversations`);
    expect(list.json._links.next).toBeUndefined();
  });

  test('users: create, duplicate name (409), list by name, get', async () => {
    const alice = await call(vonage, 'POST', '/users', { name: 'alice', display_name: 'Alice' });
    expect(alice.status).toBe(201);
    expect(alice.json).toMatchObject({ name: 'alice', display_name: 'Alice', id: expect.stringMatching(/^USR-/) });
    expect((await call(vonage, 'POST', '/users', { name: 'alice' })).json.code).toBe('user:error:duplicate-name');
    await call(vonage, 'POST', '/users', { name: 'bob' });
    const byName = await call(vonage, 'GET', '/users?name=bob');
    expect(byName.json._embedded.users.map((u: { name: string }) => u.name)).toEqual(['bob']);
    expect((await call(vonage, 'GET', `/users/${alice.json.id}`)).json.name).toBe('alice');
    expect((await call(vonage, 'GET', '/users/USR-nope')).status).toBe(404);
  });

  test('members: joining adds a member:joined event; a user token posts as its member; strangers are refused', async () => {
    const conversation = (await call(vonage, 'POST', '/conversations', { name: 'c' })).json;
    const base = `/conversations/${conversation.id}`;
    await call(vonage, 'POST', '/users', { name: 'alice', display_name: 'Alice' });
    await call(vonage, 'POST', '/users', { name: 'mallory' });

    expect((await call(vonage, 'POST', `${base}/members`, { state: 'joined', user: { name: 'nobody' }, channel: { type: 'app' } })).json.code).toBe(
      'user:error:not-found',
    );
    expect((await call(vonage, 'POST', `${base}/members`, { state: 'left', user: { name: 'alice' } })).status).toBe(400);
    const member = await call(vonage, 'POST', `${base}/members`, { state: 'joined', user: { name: 'alice' }, channel: { type: 'app' } });
    expect(member.status).toBe(201);
    expect(member.json).toMatchObject({ state: 'JOINED', conversation_id: conversation.id, _embedded: { user: { name: 'alice' } } });
    expect(member.json.id).toMatch(/^MEM-/);
    const again = await call(vonage, 'POST', `${base}/members`, { state: 'joined', user: { name: 'alice' } });
    expect([again.status, again.json.code]).toEqual([409, 'conversation:error:member-already-joined']);
    const members = await call(vonage, 'GET', `${base}/members`);
    expect(members.json._embedded.members.map((m: { id: string }) => m.id)).toEqual([member.json.id]);

    // A Client SDK user token: `from` is the user's own member, filled in when absent.
    const posted = await call(vonage, 'POST', `${base}/events`, { type: 'custom:wechat:message', body: { content: 'hi' } }, userToken('alice'));
    expect(posted.status).toBe(201);
    expect(posted.json.from).toBe(member.json.id);
    expect(vonage.events.at(-1)).toMatchObject({ from: member.json.id, jwtClaims: { sub: 'alice' } });
    const stranger = await call(vonage, 'POST', `${base}/events`, { type: 'custom:x', body: {} }, userToken('mallory'));
    expect(stranger.status).toBe(403);
    const impostor = await call(vonage, 'POST', `${base}/events`, { type: 'custom:x', from: 'MEM-someone', body: {} });
    expect(impostor.json.code).toBe('member:error:not-found');
    expect((await call(vonage, 'GET', `${base}/events`, undefined, userToken('no-such-user'))).status).toBe(401);

    const events = await call(vonage, 'GET', `${base}/events`);
    expect(events.json._embedded.events.map((e: { type: string }) => e.type)).toEqual(['member:joined', 'custom:wechat:message']);
    expect(events.json._embedded.events[0]!.body).toMatchObject({ member_id: member.json.id, timestamp: { joined: expect.any(String) } });
    expect(events.json._embedded.events[1]).toMatchObject({
      id: 2,
      from: member.json.id,
      body: { content: 'hi' },
      _embedded: { from_user: { name: 'alice', display_name: 'Alice' }, from_member: { id: member.json.id } },
    });
  });

  test('events: list pages with page_size and cursor links, order, filters; single event; 404s', async () => {
    const conversation = (await call(vonage, 'POST', '/conversations', { name: 'paged' })).json;
    const base = `/conversations/${conversation.id}`;
    for (let i = 1; i <= 5; i += 1) {
      expect((await call(vonage, 'POST', `${base}/events`, { type: i % 2 ? 'custom:odd' : 'custom:even', body: { i } })).json.id).toBe(i);
    }
    const first = await call(vonage, 'GET', `${base}/events?page_size=2`);
    expect(Array.isArray(first.json._embedded.events)).toBe(true);
    expect(first.json._embedded.events.map((e: { id: number }) => e.id)).toEqual([1, 2]);
    expect(first.json.page_size).toBe(2);
    expect(first.json._links.prev).toBeUndefined();
    const second = await call(vonage, 'GET', first.json._links.next.href);
    expect(second.json._embedded.events.map((e: { id: number }) => e.id)).toEqual([3, 4]);
    expect(second.json._links.prev.href).toContain('page_size=2');
    const third = await call(vonage, 'GET', second.json._links.next.href);
    expect(third.json._embedded.events.map((e: { id: number }) => e.id)).toEqual([5]);
    expect(third.json._links.next).toBeUndefined();

    const desc = await call(vonage, 'GET', `${base}/events?order=desc&page_size=3`);
    expect(desc.json._embedded.events.map((e: { id: number }) => e.id)).toEqual([5, 4, 3]);
    const odd = await call(vonage, 'GET', `${base}/events?event_type=custom:odd&start_id=2`);
    expect(odd.json._embedded.events.map((e: { id: number }) => e.id)).toEqual([3, 5]);

    for (const bad of ['page_size=0', 'page_size=101', 'cursor=garbage', 'order=sideways']) {
      const response = await call(vonage, 'GET', `${base}/events?${bad}`);
      expect(response.status).toBe(400);
      expect(response.json.code).toBe('http:error:validation-fail');
      expect(response.json.invalid_parameters).toHaveLength(1);
    }
    expect((await call(vonage, 'GET', `${base}/events/3`)).json).toMatchObject({ id: 3, type: 'custom:odd', body: { i: 3 } });
    expect((await call(vonage, 'GET', `${base}/events/99`)).json.code).toBe('event:error:not-found');
    expect((await call(vonage, 'POST', '/conversations/CON-unknown/events', { type: 'custom:x', body: {} })).json.code).toBe(
      'conversation:error:not-found',
    );
    expect((await call(vonage, 'GET', `${base}/events/`)).status).toBe(404);
    expect((await call(vonage, 'DELETE', `${base}/events`)).status).toBe(405);
    expect((await call(vonage, 'GET', `${base}/events`, undefined, null)).json.code).toBe('system:error:invalid-token');
  });
});

describe('Vonage emulator: dispatch to the RTC event_url', () => {
  let vonage: VonageEmulator | undefined;
  afterEach(async () => {
    await vonage?.close();
    vonage = undefined;
  });

  test('every event, the application\'s own included, is dispatched signed as the bridge verifies it', async () => {
    const eventUrl = await startEventUrl(() => 200);
    try {
      vonage = await startVonageEmulator({ publicKeyPem, applicationId: APPLICATION_ID, signatureSecret: SECRET, rtcEventUrl: eventUrl.url, apiKey: 'key123' });
      const conversation = (await call(vonage, 'POST', '/conversations', { name: 'echo' })).json;
      const inbound = { type: 'custom:wechat:message', body: { direction: 'inbound', from: 'oUser', content: 'hi' } };
      await call(vonage, 'POST', `/conversations/${conversation.id}/events`, inbound);
      await call(vonage, 'POST', `/conversations/${conversation.id}/events`, { type: 'custom:wechat:status', body: { status: 'delivered' } });
      await vonage.waitForDispatches((all) => all.length === 3 && all.every((d) => d.outcome === 'delivered'));

      expect(eventUrl.received.map((r) => r.json.type)).toEqual(['conversation:created', 'custom:wechat:message', 'custom:wechat:status']);
      // Like the live service: an application event without an event id or a conversation_id.
      expect(eventUrl.received[0]!.json).toEqual({
        type: 'conversation:created',
        body: { id: conversation.id, name: 'echo' },
        application_id: APPLICATION_ID,
        timestamp: expect.any(String),
      });
      const echo = eventUrl.received[1]!;
      expect(echo.json).toEqual({
        type: 'custom:wechat:message',
        body: inbound.body,
        id: 1,
        conversation_id: conversation.id,
        application_id: APPLICATION_ID,
        timestamp: expect.any(String),
      });
      const jtis = new Set<string>();
      for (const request of eventUrl.received) {
        const verified = verifyVonageWebhookSignature({ authorization: request.authorization, rawBody: request.raw, secret: SECRET, nowMs: Date.now() });
        jtis.add(verified.jti);
        const claims = jwt.decode(request.authorization!.replace(/^Bearer /, '')) as Record<string, unknown>;
        expect(claims).toMatchObject({ iss: 'Vonage', api_key: 'key123', application_id: APPLICATION_ID });
        expect(() =>
          verifyVonageWebhookSignature({ authorization: request.authorization, rawBody: Buffer.concat([request.raw, Buffer.from(' ')]), secret: SECRET, nowMs: Date.now() }),
        ).toThrow(/payload_hash/);
      }
      expect(jtis.size).toBe(3);
    } finally {
      await eventUrl.close();
    }
  });

  test('5xx is retried (signed afresh each time), 4xx is final; without a secret nothing is signed', async () => {
    const eventUrl = await startEventUrl((n) => (n === 1 ? 503 : n === 2 ? 200 : 400));
    try {
      vonage = await startVonageEmulator({ publicKeyPem, applicationId: APPLICATION_ID, signatureSecret: SECRET, dispatchRetryDelaysMs: [20, 20, 20] });
      const conversation = (await call(vonage, 'POST', '/conversations', { name: 'retry' })).json;
      vonage.setRtcEventUrl(eventUrl.url);
      await call(vonage, 'POST', `/conversations/${conversation.id}/events`, { type: 'custom:a', body: {} });
      await call(vonage, 'POST', `/conversations/${conversation.id}/events`, { type: 'custom:b', body: {} });
      const dispatches = await vonage.waitForDispatches((all) => all.length === 2 && all.every((d) => d.outcome !== 'pending'));
      expect(dispatches.map((d) => [d.type, d.outcome, d.attempts.map((a) => a.status)])).toEqual([
        ['custom:a', 'delivered', [503, 200]],
        ['custom:b', 'failed', [400]],
      ]);
      const [first, second] = dispatches[0]!.authorizations;
      expect(first).not.toBe(second);
      expect(eventUrl.received[0]!.raw.equals(eventUrl.received[1]!.raw)).toBe(true);
    } finally {
      await eventUrl.close();
    }

    const unsigned = await startEventUrl(() => 200);
    try {
      const plain = await startVonageEmulator({ publicKeyPem, applicationId: APPLICATION_ID, rtcEventUrl: unsigned.url });
      const conversation = (await call(plain, 'POST', '/conversations', {})).json;
      await call(plain, 'POST', `/conversations/${conversation.id}/events`, { type: 'custom:a', body: {} });
      await plain.waitForDispatches((all) => all.length === 2 && all.every((d) => d.outcome === 'delivered'));
      expect(unsigned.received[0]!.authorization).toBeUndefined();
      await plain.close();
    } finally {
      await unsigned.close();
    }
  });

  test('an unreachable event_url is retried, then given up; the traffic log shows each attempt', async () => {
    vonage = await startVonageEmulator({ publicKeyPem, applicationId: APPLICATION_ID, rtcEventUrl: 'http://127.0.0.1:9/rtcEvent', dispatchRetryDelaysMs: [10, 10] });
    const conversation = (await call(vonage, 'POST', '/conversations', {})).json;
    await call(vonage, 'POST', `/conversations/${conversation.id}/events`, { type: 'custom:a', body: {} });
    const dispatches = await vonage.waitForDispatches((all) => all.length === 2 && all.every((d) => d.outcome === 'failed'));
    const dispatch = dispatches.find((d) => d.type === 'custom:a');
    expect(dispatch!.attempts).toHaveLength(3);
    expect(dispatch!.attempts.every((a) => a.status === undefined && typeof a.error === 'string')).toBe(true);
    // Three attempts each for conversation:created and custom:a.
    expect(vonage.traffic.recent().filter((t) => t.channel === 'vonage-webhook')).toHaveLength(6);
  });
});
