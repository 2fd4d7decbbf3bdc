/**
 * `/rtcEvent` with VONAGE_SIGNATURE_SECRET set: only requests signed by Vonage (HS256 JWT over the
 * exact body, fresh `iat`, unused `jti`) are accepted; everything else is a 401 and sends nothing.
 * Without the secret, unsigned requests are accepted.
 */
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { startVonageEmulator } from '../../src/sandbox/vonage/emulator';
import { startHarness, TEST_VONAGE_APP_ID, type Harness } from '../support/bridge-harness';
import { testKeyPair } from '../support/keys';
import { outboundMessage, postRtcEvent, signRtcBody } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';

const SECRET = 'vonage-signature-secret-for-tests-0123456789';
const now = () => Math.floor(Date.now() / 1000);

describe('with VONAGE_SIGNATURE_SECRET', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({ signatureSecret: SECRET });
  });
  afterAll(() => harness.close());

  test('a validly signed outbound event is accepted and sent', async () => {
    const event = outboundMessage('oSigned', { content: 'signed hello' });
    expect(await postRtcEvent(harness.baseUrl, event, { sign: { secret: SECRET } })).toEqual({ status: 200, text: 'ok' });
    const [sent] = await harness.weChat.waitForSends(1);
    expect(sent!.json).toMatchObject({ touser: 'oSigned', text: { content: 'signed hello' } });
  });

  test('a signed event the bridge ignores is answered 200', async () => {
    const event = { type: 'member:joined', id: 3, conversation_id: 'CON-x', body: {} };
    expect((await postRtcEvent(harness.baseUrl, event, { sign: { secret: SECRET } })).status).toBe(200);
  });

  const rejected: Array<[string, () => { payload: string; authorization?: string }]> = [
    ['not a bearer token', () => ({ payload: JSON.stringify(outboundMessage('oX', { content: 'x' })), authorization: `Basic ${Buffer.from('a:b').toString('base64')}` })],
    [
      'signed with the wrong secret',
      () => {
        const payload = JSON.stringify(outboundMessage('oX', { content: 'x' }));
        return { payload, authorization: signRtcBody(payload, { secret: 'not-the-secret' }) };
      },
    ],
    [
      'body changed after signing',
      () => {
        const payload = JSON.stringify(outboundMessage('oX', { content: 'x' }));
        return { payload: payload.replace('"oX"', '"oAttacker"'), authorization: signRtcBody(payload, { secret: SECRET }) };
      },
    ],
    [
      'body re-serialised after signing (whitespace)',
      () => {
        const event = outboundMessage('oX', { content: 'x' });
        return { payload: JSON.stringify(event, null, 2), authorization: signRtcBody(JSON.stringify(event), { secret: SECRET }) };
      },
    ],
    [
      'stale iat (6 minutes old)',
      () => {
        const payload = JSON.stringify(outboundMessage('oX', { content: 'x' }));
        return { payload, authorization: signRtcBody(payload, { secret: SECRET, claims: { iat: now() - 360 } }) };
      },
    ],
    [
      'iat 6 minutes in the future',
      () => {
        const payload = JSON.stringify(outboundMessage('oX', { content: 'x' }));
        return { payload, authorization: signRtcBody(payload, { secret: SECRET, claims: { iat: now() + 360 } }) };
      },
    ],
  ];

  test.each(rejected)('%s → 401, nothing sent', async (_name, build) => {
    const before = harness.weChat.requests.length;
    const { payload, authorization } = build();
    const answer = await postRtcEvent(harness.baseUrl, payload, authorization === undefined ? {} : { authorization });
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain(SECRET);
    await sleep(50);
    expect(harness.weChat.requests.length).toBe(before);
  });

  test('a reused jti is refused for a different event; the very same request again is acted on once', async () => {
    const jti = 'reused-jti-0001';
    const first = JSON.stringify(outboundMessage('oReplay', { content: 'first' }));
    const second = JSON.stringify(outboundMessage('oReplay', { content: 'second' }));
    expect((await postRtcEvent(harness.baseUrl, first, { authorization: signRtcBody(first, { secret: SECRET, claims: { jti } }) })).status).toBe(200);
    // The very same request again (a redelivery, or a captured replay): its event is stored, so 200 and
    // nothing more; then a new body under the same jti.
    const replay = signRtcBody(first, { secret: SECRET, claims: { jti } });
    expect((await postRtcEvent(harness.baseUrl, first, { authorization: replay })).status).toBe(200);
    expect((await postRtcEvent(harness.baseUrl, second, { authorization: signRtcBody(second, { secret: SECRET, claims: { jti } }) })).status).toBe(401);
    await sleep(150);
    expect(harness.weChat.sent.filter((s) => (s.json as { touser: string }).touser === 'oReplay')).toHaveLength(1);
  });

  test('malformed JSON with a valid signature is still a 400', async () => {
    const payload = '{"type":';
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization: signRtcBody(payload, { secret: SECRET }) })).status).toBe(400);
  });

  test('no Authorization header (Vonage\'s rare unsigned callback) → 503 so that it is retried signed; nothing sent, logged', async () => {
    const before = harness.weChat.requests.length;
    const answer = await postRtcEvent(harness.baseUrl, outboundMessage('oUnsigned', { content: 'x' }));
    expect(answer.status).toBe(503);
    await sleep(50);
    expect(harness.weChat.requests.length).toBe(before);
    expect(harness.logs.join('')).toMatch(/unsigned RTC callback, answered 503/);
  });

  test('a genuine token without payload_hash is accepted, logged at warn and counted', async () => {
    const metric = async () => {
      const text = await (await fetch(`${harness.baseUrl}/metrics`)).text();
      return Number(/^wechat_bridge_rtc_unhashed_callbacks_total (\d+)/m.exec(text)?.[1] ?? 'NaN');
    };
    const before = await metric();
    const event = outboundMessage('oUnhashed', { content: 'no hash' });
    const payload = JSON.stringify(event);
    const authorization = signRtcBody(payload, { secret: SECRET, claims: { payload_hash: undefined } });
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization })).status).toBe(200);
    await waitFor('the send', () => harness.weChat.sent.some((s) => (s.json as { touser: string }).touser === 'oUnhashed'));
    expect(await metric()).toBe(before + 1);
    const line = harness.logs.find((l) => l.includes('without payload_hash'));
    expect((JSON.parse(line!) as { level: unknown }).level).toBe(40);
  });

  test('a store failure (503) does not make Vonage\'s retry with the same token a replay: it is stored and sent once', async () => {
    const store = harness.bridge.store;
    const enqueue = store.enqueue.bind(store);
    store.enqueue = async () => {
      store.enqueue = enqueue;
      throw new Error('disk I/O error');
    };
    const payload = JSON.stringify(outboundMessage('oRetried', { content: 'after a store failure' }));
    const authorization = signRtcBody(payload, { secret: SECRET });
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization })).status).toBe(503);
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization })).status).toBe(200);
    // And once more, as an already stored event: 200, nothing new.
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization })).status).toBe(200);
    await waitFor('the send', () => harness.weChat.sent.some((s) => (s.json as { touser: string }).touser === 'oRetried'));
    await sleep(150);
    expect(harness.weChat.sent.filter((s) => (s.json as { touser: string }).touser === 'oRetried')).toHaveLength(1);
  });

  test.each([
    ['conversation:created (no id, no conversation_id)', { type: 'conversation:created', application_id: 'app', timestamp: '2026-12-02T00:00:00.000Z', body: { id: 'CON-1', name: 'x' } }],
    ['app:knocking (no conversation_id)', { type: 'app:knocking', id: 'e1', application_id: 'app', body: {} }],
    ['an unknown kind with nothing else', { type: 'something:new' }],
    ['an inbound message echo without id', { type: 'custom:wechat:message', body: { direction: 'inbound' } }],
  ])('an event the bridge ignores is 200 even when unreadable: %s', async (_name, event) => {
    expect(await postRtcEvent(harness.baseUrl, event, { sign: { secret: SECRET } })).toEqual({ status: 200, text: 'ok' });
  });

  test('an event the bridge would act on but cannot read is still a 400', async () => {
    const { id: _id, ...withoutId } = outboundMessage('oX', { content: 'x' });
    expect((await postRtcEvent(harness.baseUrl, withoutId, { sign: { secret: SECRET } })).status).toBe(400);
  });

  test('the secret never reaches the logs', () => {
    expect(harness.logs.join('')).not.toContain(SECRET);
  });
});

describe('with VONAGE_PREVIOUS_SIGNATURE_SECRET (a rotation)', () => {
  const PREVIOUS = 'the-previous-signature-secret-0123456789';
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness({ signatureSecret: SECRET, previousSignatureSecret: PREVIOUS });
  });
  afterAll(() => harness.close());

  test('callbacks signed with the current or the previous secret are accepted; any other is 401', async () => {
    expect((await postRtcEvent(harness.baseUrl, outboundMessage('oRotate', { content: 'new' }), { sign: { secret: SECRET } })).status).toBe(200);
    expect((await postRtcEvent(harness.baseUrl, outboundMessage('oRotate', { content: 'old' }), { sign: { secret: PREVIOUS } })).status).toBe(200);
    expect((await postRtcEvent(harness.baseUrl, outboundMessage('oRotate', { content: 'bad' }), { sign: { secret: 'another' } })).status).toBe(401);
    await harness.weChat.waitForSends(2);
    expect(harness.logs.join('')).not.toContain(PREVIOUS);
  });
});

describe('without VONAGE_SIGNATURE_SECRET', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  test('unsigned requests are accepted (and so are signed ones, unchecked)', async () => {
    expect((await postRtcEvent(harness.baseUrl, outboundMessage('oOpen', { content: 'a' }))).status).toBe(200);
    expect((await postRtcEvent(harness.baseUrl, outboundMessage('oOpen', { content: 'b' }), { sign: { secret: 'whatever' } })).status).toBe(200);
    await harness.weChat.waitForSends(2);
  });
});

describe('the emulator\'s occasional unsigned callback', () => {
  test('an agent reply that first arrives unsigned (503) is retried signed and delivered exactly once', async () => {
    const vonage = await startVonageEmulator({
      publicKeyPem: testKeyPair().publicKeyPem,
      applicationId: TEST_VONAGE_APP_ID,
      signatureSecret: SECRET,
      dispatchRetryDelaysMs: [50, 50, 50],
    });
    const token = () =>
      jwt.sign({ application_id: TEST_VONAGE_APP_ID, jti: crypto.randomUUID() }, testKeyPair().privateKeyPem, { algorithm: 'RS256', expiresIn: 600 });
    const api = async (method: string, path: string, body: unknown) => {
      const response = await fetch(`${vonage.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return (await response.json()) as { id: string | number };
    };
    const conversation = await api('POST', '/conversations', { name: 'unsigned-once' });
    const harness = await startHarness({ vonage, signatureSecret: SECRET, conversationId: String(conversation.id) });
    try {
      vonage.setRtcEventUrl(`${harness.baseUrl}/rtcEvent`);
      vonage.sendUnsignedCallbacks(1);
      const reply = await api('POST', `/conversations/${conversation.id}/events`, {
        type: 'custom:wechat:message',
        body: { direction: 'outbound', to: 'oUnsignedFirst', content: 'reply that first came unsigned' },
      });
      const [dispatch] = await vonage.waitForDispatches((all) => all.some((d) => d.eventId === reply.id && d.outcome !== 'pending'));
      const record = (await vonage.waitForDispatches((all) => all.some((d) => d.eventId === reply.id && d.outcome === 'delivered'))).find(
        (d) => d.eventId === reply.id,
      )!;
      expect(dispatch).toBeDefined();
      expect(record.attempts.map((a) => a.status)).toEqual([503, 200]);
      expect(record.authorizations[0]).toBeUndefined();
      expect(record.authorizations[1]).toMatch(/^Bearer /);
      await waitFor('the send', () => harness.weChat.sent.some((s) => (s.json as { touser: string }).touser === 'oUnsignedFirst'));
      await sleep(200);
      expect(harness.weChat.sent.filter((s) => (s.json as { touser: string }).touser === 'oUnsignedFirst')).toHaveLength(1);
    } finally {
      vonage.setRtcEventUrl(undefined);
      await harness.close();
      await vonage.close();
    }
  });
});
