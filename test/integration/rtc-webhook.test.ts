/**
 * `/rtcEvent` with VONAGE_SIGNATURE_SECRET set: only requests signed by Vonage (HS256 JWT over the
 * exact body, fresh `iat`, unused `jti`) are accepted; everything else is a 401 and sends nothing.
 * Without the secret, unsigned requests are accepted.
 */
import { startHarness, type Harness } from '../support/bridge-harness';
import { outboundMessage, postRtcEvent, signRtcBody } from '../support/rtc-events';

const SECRET = 'vonage-signature-secret-for-tests-0123456789';
const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
    ['missing Authorization header', () => ({ payload: JSON.stringify(outboundMessage('oX', { content: 'x' })) })],
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
    [
      'no payload_hash',
      () => {
        const payload = JSON.stringify(outboundMessage('oX', { content: 'x' }));
        return { payload, authorization: signRtcBody(payload, { secret: SECRET, claims: { payload_hash: undefined } }) };
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

  test('a reused jti is refused, even for a different event', async () => {
    const jti = 'reused-jti-0001';
    const first = JSON.stringify(outboundMessage('oReplay', { content: 'first' }));
    const second = JSON.stringify(outboundMessage('oReplay', { content: 'second' }));
    expect((await postRtcEvent(harness.baseUrl, first, { authorization: signRtcBody(first, { secret: SECRET, claims: { jti } }) })).status).toBe(200);
    // The very same request again (a captured replay), then a new body under the same jti.
    const replay = signRtcBody(first, { secret: SECRET, claims: { jti } });
    expect((await postRtcEvent(harness.baseUrl, first, { authorization: replay })).status).toBe(401);
    expect((await postRtcEvent(harness.baseUrl, second, { authorization: signRtcBody(second, { secret: SECRET, claims: { jti } }) })).status).toBe(401);
    await sleep(150);
    expect(harness.weChat.sent.filter((s) => (s.json as { touser: string }).touser === 'oReplay')).toHaveLength(1);
  });

  test('malformed JSON with a valid signature is still a 400', async () => {
    const payload = '{"type":';
    expect((await postRtcEvent(harness.baseUrl, payload, { authorization: signRtcBody(payload, { secret: SECRET }) })).status).toBe(400);
  });

  test('the secret never reaches the logs', () => {
    expect(harness.logs.join('')).not.toContain(SECRET);
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
