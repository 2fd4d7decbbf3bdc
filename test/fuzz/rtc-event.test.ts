/**
 * Fuzzing the Vonage RTC webhook: `parseRtcEvent` on any JSON value and on damaged valid events, and
 * `verifyVonageWebhookSignature` on arbitrary and crafted Authorization headers. Only
 * InvalidInputError may come out; a signature never survives a change to the body or to the token.
 */
import * as crypto from 'node:crypto';
import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import { InvalidInputError } from '../../src/errors';
import { parseRtcEvent, verifyVonageWebhookSignature } from '../../src/vonage/webhook';
import { anyText, mustThrow, mutated, onlyThrows, RUNS } from './support';

const SECRET = 'a-signature-secret-of-reasonable-length';
const NOW_MS = Date.UTC(2026, 10, 21, 12, 0, 0);
const NOW_S = NOW_MS / 1000;

const VALID_EVENT = {
  type: 'custom:wechat:message',
  body: { direction: 'outbound', to: 'oUser123', content: 'Hi from the agent', msg_type: 'text' },
  params: {},
  id: 42,
  conversation_id: 'CON-63f61863-4a51-4f6b-86e1-46edebio0391',
  application_id: 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee',
  timestamp: '2026-11-21T12:00:00.000Z',
  from: 'MEM-63f61863-4a51-4f6b-86e1-46edebio0391',
  _embedded: { from_member: { id: 'MEM-63f61863-4a51-4f6b-86e1-46edebio0391' } },
};
const KEYS = Object.keys(VALID_EVENT).concat(['cid', '__proto__', 'constructor', 'toString']);

function expectParsed(json: unknown): void {
  const result = onlyThrows(InvalidInputError, () => parseRtcEvent(json), (error) => error.status === 400);
  if (!result.ok) return;
  const event = result.value;
  expect(typeof event.type).toBe('string');
  expect(event.type).not.toBe('');
  expect(typeof event.id).toBe('string');
  expect(event.id.trim()).toBe(event.id);
  expect(event.id).not.toBe('');
  expect(typeof event.conversationId).toBe('string');
  expect(event.conversationId).not.toBe('');
  expect(event.body !== null && typeof event.body === 'object' && !Array.isArray(event.body)).toBe(true);
  for (const optional of [event.applicationId, event.timestamp, event.from]) {
    if (optional !== undefined) expect(typeof optional).toBe('string');
  }
}

/** A valid event with some properties deleted, replaced by arbitrary JSON, or added. */
const damagedEvent = fc
  .array(
    fc.oneof(
      fc.constantFrom(...KEYS).map((key) => ({ kind: 'delete' as const, key })),
      fc.tuple(fc.constantFrom(...KEYS), fc.jsonValue({ maxDepth: 3 })).map(([key, value]) => ({ kind: 'set' as const, key, value })),
      fc.tuple(fc.constantFrom('to', 'msg_type', 'direction', 'content', '__proto__'), fc.jsonValue({ maxDepth: 2 })).map(([key, value]) => ({ kind: 'body' as const, key, value })),
    ),
    { minLength: 1, maxLength: 5 },
  )
  .map((edits) => {
    // Own properties even for `__proto__` (as JSON.parse makes them); then through JSON text, as the webhook reads it.
    const put = (target: object, key: string, value: unknown) =>
      Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
    const event = JSON.parse(JSON.stringify(VALID_EVENT)) as Record<string, unknown>;
    for (const edit of edits) {
      if (edit.kind === 'delete') delete event[edit.key];
      else if (edit.kind === 'set') put(event, edit.key, edit.value);
      else if (event.body !== null && typeof event.body === 'object') put(event.body, edit.key, edit.value);
    }
    return JSON.parse(JSON.stringify(event)) as unknown;
  });

describe('parseRtcEvent', () => {
  it('any JSON value: an event or InvalidInputError(400)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (json) => expectParsed(json)),
      { numRuns: RUNS.cheap },
    );
  });

  it('any JavaScript value (not only JSON): an event or InvalidInputError(400)', () => {
    fc.assert(
      fc.property(fc.anything({ withNullPrototype: true, withMap: true, withBigInt: true, withSparseArray: true }), (value) => expectParsed(value)),
      { numRuns: RUNS.medium },
    );
  });

  it('valid events with properties deleted, replaced or added', () => {
    fc.assert(
      fc.property(damagedEvent, (json) => expectParsed(json)),
      { numRuns: RUNS.medium },
    );
  });

  it('damaged JSON text that still parses', () => {
    const snippets = ['"__proto__":{"type":"x"},', '"id":-1,', '"id":1e400,', '"id":"  ",', '"cid":"C",', 'null', '[]', '{}', '"', ',', ':', '\\u0000'];
    fc.assert(
      fc.property(mutated(fc.constant(JSON.stringify(VALID_EVENT)), 3, snippets), (text) => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return; // the HTTP layer answers 400 before parseRtcEvent
        }
        expectParsed(json);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('an own "__proto__" property never reaches the prototype chain', () => {
    const event = parseRtcEvent(JSON.parse('{"type":"custom:x","id":1,"cid":"C","body":{"__proto__":{"polluted":true}},"__proto__":{"id":2}}'));
    expect(event.id).toBe('1');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

function sign(rawBody: Buffer, claims: Record<string, unknown> = {}): string {
  const payload = {
    iat: NOW_S,
    jti: crypto.randomUUID(),
    payload_hash: crypto.createHash('sha256').update(rawBody).digest('hex'),
    ...claims,
  };
  return jwt.sign(payload, SECRET, { algorithm: 'HS256' });
}

const verify = (authorization: string | undefined, rawBody: Buffer) =>
  verifyVonageWebhookSignature({ authorization, rawBody, secret: SECRET, nowMs: NOW_MS });

const onlyUnauthorized = (authorization: string | undefined, rawBody: Buffer) =>
  onlyThrows(InvalidInputError, () => verify(authorization, rawBody), (error) => error.status === 401);

const rawBody = fc.oneof(fc.constant(Buffer.from(JSON.stringify(VALID_EVENT))), anyText(200).map((text) => Buffer.from(text)));

/** Crafted tokens: header and payload segments that are JSON or not, typ JWT or not, any algorithm. */
const craftedToken = fc
  .tuple(
    fc.oneof(
      fc.record({ alg: fc.constantFrom('HS256', 'none', 'RS256', 'HS512'), typ: fc.constantFrom('JWT', 'jwt', undefined) }, { requiredKeys: ['alg'] }).map((h) => JSON.stringify(h)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      anyText(30),
    ),
    fc.oneof(
      fc.record({ iat: fc.oneof(fc.constant(NOW_S), fc.jsonValue()), jti: fc.jsonValue(), payload_hash: fc.jsonValue() }, { requiredKeys: [] }).map((p) => JSON.stringify(p)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      anyText(30),
    ),
    fc.oneof(fc.constant(''), fc.base64String({ maxLength: 60 }).map((s) => s.replace(/=+$/, '').replaceAll('+', '-').replaceAll('/', '_'))),
  )
  .map(([header, payload, signature]) => `${b64url(header)}.${b64url(payload)}.${signature}`);

describe('verifyVonageWebhookSignature', () => {
  it('arbitrary Authorization headers: only InvalidInputError(401)', () => {
    const header = fc.oneof(
      anyText(100),
      fc.constantFrom(undefined, '', 'Bearer', 'Bearer ', 'Bearer a.b.c', 'Basic dXNlcjpwYXNz', 'bearer ..', 'Bearer a..'),
      anyText(60).map((text) => `Bearer ${text}`),
    );
    fc.assert(
      fc.property(header, rawBody, (authorization, body) => {
        expect(onlyUnauthorized(authorization, body).ok).toBe(false);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('crafted tokens (typ JWT with a payload that is not JSON, alg none, …): only InvalidInputError(401)', () => {
    fc.assert(
      fc.property(craftedToken, rawBody, (token, body) => {
        expect(onlyUnauthorized(`Bearer ${token}`, body).ok).toBe(false);
      }),
      { numRuns: RUNS.cheap },
    );
  });

  it('regression: a typ JWT header with a payload that is not JSON is a 401, not a SyntaxError', () => {
    // jws.decode JSON.parses the payload of a `typ: JWT` token without a try; it escaped as a 500.
    const token = `${b64url('{"alg":"HS256","typ":"JWT"}')}.${b64url('not json')}.c2ln`;
    expect(mustThrow(InvalidInputError, () => verify(`Bearer ${token}`, Buffer.from('{}'))).status).toBe(401);
  });

  it('accepts a correctly signed body, and never the same token with a changed body', () => {
    const change = fc.oneof(
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([at, bit]) => (body: Buffer) => {
        const copy = Buffer.from(body);
        if (copy.length > 0) copy[at % copy.length] = copy[at % copy.length]! ^ (1 << bit);
        else return Buffer.from(' ');
        return copy;
      }),
      fc.nat().map((n) => (body: Buffer) => body.subarray(0, n % body.length)),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => (body: Buffer) => Buffer.concat([body, extra])),
    );
    fc.assert(
      fc.property(rawBody, change, (body, mutate) => {
        const token = sign(body);
        expect(verify(`Bearer ${token}`, body).iat).toBe(NOW_S);
        const changed = mutate(body);
        fc.pre(!changed.equals(body));
        expect(onlyUnauthorized(`Bearer ${token}`, changed).ok).toBe(false);
      }),
      { numRuns: RUNS.expensive },
    );
  });

  it('never accepts a token with any one character changed', () => {
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= ';
    fc.assert(
      fc.property(rawBody, fc.nat(), fc.constantFrom(...ALPHABET), (body, at, char) => {
        const token = sign(body);
        const index = at % token.length;
        fc.pre(token[index] !== char);
        const changed = token.slice(0, index) + char + token.slice(index + 1);
        expect(onlyUnauthorized(`Bearer ${changed}`, body).ok).toBe(false);
      }),
      { numRuns: RUNS.expensive },
    );
  });

  it('never accepts a token signed with another secret or claiming another body', () => {
    fc.assert(
      fc.property(rawBody, anyText(40).filter((s) => s !== '' && s !== SECRET), (body, otherSecret) => {
        const forged = jwt.sign({ iat: NOW_S, jti: 'j', payload_hash: crypto.createHash('sha256').update(body).digest('hex') }, otherSecret, { algorithm: 'HS256' });
        expect(onlyUnauthorized(`Bearer ${forged}`, body).ok).toBe(false);
        const otherHash = sign(Buffer.concat([body, Buffer.from('x')]));
        expect(onlyUnauthorized(`Bearer ${otherHash}`, body).ok).toBe(false);
      }),
      { numRuns: RUNS.expensive },
    );
  });
});
