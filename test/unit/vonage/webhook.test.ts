import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import jwt from 'jsonwebtoken';
import { InvalidInputError } from '../../../src/errors';
import { parseRtcEvent, verifyVonageWebhookSignature } from '../../../src/vonage/webhook';
import { testKeyPair } from '../../support/keys';

const SECRET = 'a-signature-secret-of-reasonable-length';
const NOW_MS = Date.UTC(2026, 10, 21, 12, 0, 0);
const NOW_S = NOW_MS / 1000;

const schemas = JSON.parse(fs.readFileSync(path.join(__dirname, '../../fixtures/vonage-schemas.json'), 'utf8')) as {
  rtcEventWebhookCustomEvent: { required: string[]; properties: Record<string, unknown> };
};

/** A custom-event webhook as the spec describes it (vonage-schemas.json `rtcEventWebhookCustomEvent`). */
const CUSTOM_EVENT_SAMPLE = {
  type: 'custom:wechat:message',
  body: { direction: 'outbound', to: 'oUser123', content: 'Hi from the agent', msg_type: 'text' },
  params: {},
  id: 42,
  conversation_id: 'CON-63f61863-4a51-4f6b-86e1-46edebio0391',
  application_id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
  timestamp: '2026-11-21T12:00:00.000Z',
  from: 'MEM-63f61863-4a51-4f6b-86e1-46edebio0391',
  _embedded: {
    from_user: { id: 'USR-1', name: 'agent', display_name: 'Agent', image_url: 'https://example.com/a.png', custom_data: {} },
    from_member: { id: 'MEM-63f61863-4a51-4f6b-86e1-46edebio0391' },
  },
};

function sign(rawBody: Buffer, claims: Record<string, unknown> = {}, secret = SECRET, options: jwt.SignOptions = {}): string {
  const payload = {
    iat: NOW_S,
    jti: crypto.randomUUID(),
    iss: 'Vonage',
    payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex'),
    api_key: 'abcd1234',
    application_id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
    ...claims,
  };
  return `Bearer ${jwt.sign(payload, secret, { algorithm: 'HS256', ...options })}`;
}

function rejection(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error('expected a rejection');
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('verifyVonageWebhookSignature', () => {
  const rawBody = Buffer.from(JSON.stringify(CUSTOM_EVENT_SAMPLE));
  const verify = (authorization: string | undefined, body = rawBody, extra: { maxAgeSeconds?: number; nowMs?: number } = {}) =>
    verifyVonageWebhookSignature({ authorization, rawBody: body, secret: SECRET, nowMs: NOW_MS, ...extra });

  test('a valid signature gives jti and iat', () => {
    const jti = 'f0c0a3c8-1f5e-4a2e-8c3c-3d1a2b3c4d5e';
    expect(verify(sign(rawBody, { jti }))).toEqual({ jti, iat: NOW_S, payloadHashed: true });
    // iat within the window either way; the hash may be upper-case hex
    expect(verify(sign(rawBody, { iat: NOW_S - 299 })).iat).toBe(NOW_S - 299);
    expect(verify(sign(rawBody, { iat: NOW_S + 299 })).iat).toBe(NOW_S + 299);
    const upper = crypto.createHash('sha256').update(rawBody).digest('hex').toUpperCase();
    expect(verify(sign(rawBody, { payload_hash: upper })).iat).toBe(NOW_S);
    // a case-insensitive scheme
    expect(verify(sign(rawBody).replace('Bearer', 'bearer')).iat).toBe(NOW_S);
  });

  test('the wrong secret is refused', () => {
    const error = rejection(() => verify(sign(rawBody, {}, 'another-secret')));
    expect(error.status).toBe(401);
    expect(error.message).toMatch(/invalid token signature/);
  });

  test('a body changed after signing is refused, even by whitespace', () => {
    const authorization = sign(rawBody);
    const changed = Buffer.from(JSON.stringify({ ...CUSTOM_EVENT_SAMPLE, body: { ...CUSTOM_EVENT_SAMPLE.body, to: 'oAttacker' } }));
    expect(rejection(() => verify(authorization, changed)).message).toMatch(/payload_hash mismatch/);
    const reformatted = Buffer.from(JSON.stringify(CUSTOM_EVENT_SAMPLE, null, 1));
    expect(rejection(() => verify(authorization, reformatted)).message).toMatch(/payload_hash mismatch/);
  });

  test('a stale or future iat is refused', () => {
    expect(rejection(() => verify(sign(rawBody, { iat: NOW_S - 301 }))).message).toMatch(/iat/);
    expect(rejection(() => verify(sign(rawBody, { iat: NOW_S + 301 }))).message).toMatch(/iat/);
    expect(rejection(() => verify(sign(rawBody, { iat: NOW_S - 60 }), rawBody, { maxAgeSeconds: 30 })).status).toBe(401);
  });

  test('an expired exp is refused', () => {
    expect(rejection(() => verify(sign(rawBody, { exp: NOW_S - 1 }))).message).toMatch(/expired/);
  });

  test('alg none is refused', () => {
    const payload = {
      iat: NOW_S,
      jti: 'x',
      payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex'),
    };
    const none = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(payload)}.`;
    expect(rejection(() => verify(`Bearer ${none}`)).status).toBe(401);
    const noneWithSignature = `${none}${Buffer.from('sig').toString('base64url')}`;
    expect(rejection(() => verify(`Bearer ${noneWithSignature}`)).status).toBe(401);
  });

  test('RS256 is refused, even with a valid signature', () => {
    const { privateKeyPem } = testKeyPair();
    const payload = { iat: NOW_S, jti: 'x', payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex') };
    const rs = jwt.sign(payload, privateKeyPem, { algorithm: 'RS256' });
    expect(rejection(() => verify(`Bearer ${rs}`)).message).toMatch(/not HS256/);
  });

  test('a missing header is refused', () => {
    expect(rejection(() => verify(undefined)).message).toMatch(/missing Authorization/);
    expect(rejection(() => verify('')).message).toMatch(/missing Authorization/);
    expect(rejection(() => verify('   ')).message).toMatch(/missing Authorization/);
  });

  test('a malformed header or token is refused', () => {
    const token = sign(rawBody).slice('Bearer '.length);
    for (const header of [`Basic ${token}`, 'Bearer', `Bearer  `, `Bearer ${token} extra`, 'Bearer a.b', `${token}`, 'Bearer ...']) {
      expect(rejection(() => verify(header)).status).toBe(401);
    }
    expect(rejection(() => verify('Bearer abc.def.ghi')).message).toMatch(/malformed token/);
  });

  test('a genuine token without payload_hash is accepted, flagged as not covering the body', () => {
    expect(verify(sign(rawBody, { payload_hash: undefined, jti: 'j-unhashed' }))).toEqual({ jti: 'j-unhashed', iat: NOW_S, payloadHashed: false });
  });

  test('rotation: the previous secret is tried after the current one; any other secret is refused', () => {
    const previous = 'the-previous-signature-secret';
    const both = (authorization: string) =>
      verifyVonageWebhookSignature({ authorization, rawBody, secret: [SECRET, previous], nowMs: NOW_MS });
    expect(both(sign(rawBody, { jti: 'new' })).jti).toBe('new');
    expect(both(sign(rawBody, { jti: 'old' }, previous)).jti).toBe('old');
    expect(rejection(() => both(sign(rawBody, {}, 'a-third-secret'))).message).toMatch(/invalid token signature/);
    // Without the previous secret configured, its tokens are refused.
    expect(rejection(() => verify(sign(rawBody, {}, previous))).message).toMatch(/invalid token signature/);
  });

  test('claims the check needs must be there', () => {
    expect(rejection(() => verify(sign(rawBody, { payload_hash: 'abc' }))).message).toMatch(/payload_hash/);
    expect(rejection(() => verify(sign(rawBody, { payload_hash: 42 }))).message).toMatch(/payload_hash/);
    expect(rejection(() => verify(sign(rawBody, { jti: undefined }))).message).toMatch(/jti/);
    const withoutIat = sign(rawBody, {}, SECRET, { noTimestamp: true }); // jsonwebtoken drops iat
    expect((jwt.decode(withoutIat.slice(7)) as jwt.JwtPayload).iat).toBeUndefined();
    expect(rejection(() => verify(withoutIat)).message).toMatch(/iat/);
  });

  test('error messages never contain the token or the secret', () => {
    const authorization = sign(rawBody, {}, 'another-secret');
    const error = rejection(() => verify(authorization));
    expect(error.message).not.toContain(authorization.slice(7));
    expect(error.message).not.toContain(SECRET);
  });
});

describe('parseRtcEvent', () => {
  test('the sample follows the schema: every required property is present and known', () => {
    const schema = schemas.rtcEventWebhookCustomEvent;
    for (const name of schema.required) expect(CUSTOM_EVENT_SAMPLE).toHaveProperty(name);
    for (const name of Object.keys(CUSTOM_EVENT_SAMPLE)) expect(schema.properties).toHaveProperty(name);
  });

  test('a custom event webhook', () => {
    const raw = JSON.parse(JSON.stringify(CUSTOM_EVENT_SAMPLE)) as Record<string, unknown>;
    expect(parseRtcEvent(raw)).toEqual({
      type: 'custom:wechat:message',
      id: '42',
      conversationId: 'CON-63f61863-4a51-4f6b-86e1-46edebio0391',
      applicationId: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
      timestamp: '2026-11-21T12:00:00.000Z',
      from: 'MEM-63f61863-4a51-4f6b-86e1-46edebio0391',
      body: CUSTOM_EVENT_SAMPLE.body,
      raw,
    });
  });

  test('lenient: extra properties, string ids, legacy cid, null from, minimal payload', () => {
    const event = parseRtcEvent({ type: 'custom:x', id: '7', cid: 'CON-legacy', body: { a: 1 }, from: null, extra: { y: 1 } });
    expect(event).toMatchObject({ id: '7', conversationId: 'CON-legacy', from: undefined, applicationId: undefined, timestamp: undefined });
    expect(event.raw.extra).toEqual({ y: 1 });
    expect(parseRtcEvent({ type: 'custom:x', id: 1, conversation_id: 'CON-new', cid: 'CON-old', body: {} }).conversationId).toBe('CON-new');
  });

  test('non-custom events get an empty body when they have none', () => {
    const joined = parseRtcEvent({
      type: 'member:joined',
      id: 3,
      conversation_id: 'CON-1',
      application_id: 'app',
      timestamp: '2026-11-21T12:00:00.000Z',
    });
    expect(joined.body).toEqual({});
    expect(parseRtcEvent({ type: 'rtc:status', id: 4, conversation_id: 'CON-1', body: 'odd' }).body).toEqual({});
  });

  test.each([
    ['null', null],
    ['an array', [CUSTOM_EVENT_SAMPLE]],
    ['a string', JSON.stringify(CUSTOM_EVENT_SAMPLE)],
    ['no type', { ...CUSTOM_EVENT_SAMPLE, type: undefined }],
    ['an empty type', { ...CUSTOM_EVENT_SAMPLE, type: '' }],
    ['no id', { ...CUSTOM_EVENT_SAMPLE, id: undefined }],
    ['a fractional id', { ...CUSTOM_EVENT_SAMPLE, id: 1.5 }],
    ['an object id', { ...CUSTOM_EVENT_SAMPLE, id: { n: 1 } }],
    ['no conversation id', { ...CUSTOM_EVENT_SAMPLE, conversation_id: undefined }],
    ['a custom event without a body', { ...CUSTOM_EVENT_SAMPLE, body: undefined }],
    ['a custom event with an array body', { ...CUSTOM_EVENT_SAMPLE, body: [1] }],
  ])('refuses %s with 400', (_name, input) => {
    const error = rejection(() => parseRtcEvent(input));
    expect(error.status).toBe(400);
  });

  test('__proto__ keys are plain data and inherited properties are ignored', () => {
    const parsed = JSON.parse(
      '{"__proto__":{"polluted":true,"conversation_id":"CON-evil"},"type":"custom:x","id":1,"conversation_id":"CON-1","body":{"__proto__":{"polluted":true}}}',
    ) as unknown;
    const event = parseRtcEvent(parsed);
    expect(event.conversationId).toBe('CON-1');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    const inherited = Object.assign(Object.create({ conversation_id: 'CON-inherited' }) as object, { type: 'custom:x', id: 1, body: {} });
    expect(rejection(() => parseRtcEvent(inherited)).status).toBe(400);
  });
});
