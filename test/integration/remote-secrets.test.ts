/**
 * Secrets a remote echoes back in its error text: WeChat's `errmsg` naming the access token or the
 * app secret, a Vonage error `detail` quoting the bridge's JWT or private key. None of it may reach
 * the logs, a stored error (retry or dead letter), or the `custom:wechat:status` agents read.
 */
import jwt from 'jsonwebtoken';
import { startHarness, TEST_APP_SECRET, TEST_VONAGE_APP_ID, type Harness } from '../support/bridge-harness';
import { testKeyPair } from '../support/keys';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { sleep, waitFor } from '../support/wait';

const SEND_PATH = '/cgi-bin/message/custom/send';

describe('secrets echoed by a remote are scrubbed', () => {
  let harness: Harness;
  beforeAll(async () => {
    harness = await startHarness();
  });
  afterAll(() => harness.close());

  /** Every place an error text ends up, as one text. */
  async function everywhere(): Promise<string> {
    const deadLetters = await harness.bridge.store.listDeadLetters({ limit: 100 });
    const statuses = harness.vonage.events.filter((e) => e.type === 'custom:wechat:status').map((e) => JSON.stringify(e.body));
    return [...harness.logs, ...statuses, ...deadLetters.map((d) => d.reason)].join('\n');
  }

  const statusOf = (eventId: unknown) =>
    waitFor('the status', () => harness.vonage.events.find((e) => e.type === 'custom:wechat:status' && e.body.ref_event_id === String(eventId)), 10_000);

  test('WeChat errmsg with the access token and the app secret: the status, logs and stored errors carry neither', async () => {
    // A first send, so that a token exists to be echoed.
    const warmUp = outboundMessage('oSecretA', { content: 'hi' });
    await postRtcEvent(harness.baseUrl, warmUp);
    await statusOf(warmUp.id);
    const token = harness.weChat.issuedTokens[0]!;
    const echo = `invalid credential, access_token is ${token}, url ?access_token=${token}, appsecret ${TEST_APP_SECRET}`;

    // A retryable answer (its text is stored as the job's last error), then a permanent one.
    harness.weChat.inject(SEND_PATH, [{ errcode: -1, errmsg: echo }, { errcode: 45015, errmsg: echo }]);
    const event = outboundMessage('oSecretB', { content: 'are you there?' });
    await postRtcEvent(harness.baseUrl, event);
    const status = await statusOf(event.id);
    expect(status.body).toMatchObject({ status: 'failed', error_code: '45015' });
    expect(String(status.body.error_message)).toContain('invalid credential');
    expect(String(status.body.error_message)).toContain('[REDACTED]');

    const text = await everywhere();
    expect(text).toContain('invalid credential');
    expect(text).not.toContain(token);
    expect(text).not.toContain(TEST_APP_SECRET);
  });

  test('a Vonage error detail echoing the JWT and the private key: dead letter and logs carry neither', async () => {
    const echoedJwt = jwt.sign({ application_id: TEST_VONAGE_APP_ID, jti: 'x' }, testKeyPair().privateKeyPem, { algorithm: 'RS256' });
    const pem = testKeyPair().privateKeyPem;
    const keyLine = pem.split('\n')[1]!;
    harness.vonage.script([
      { status: 400, body: { type: 'https://developer.vonage.com/api-errors#bad-request', title: 'Bad Request', code: 'http:error:validation-fail', detail: `token ${echoedJwt} rejected; key ${pem}` } },
    ]);
    const event = outboundMessage('oSecretC', { content: 'hello' });
    await postRtcEvent(harness.baseUrl, event);
    const letters = await pollDeadLetters(harness);
    expect(letters.join('\n')).toMatch(/Bad Request|validation-fail|rejected/);

    const text = await everywhere();
    expect(text).not.toContain(echoedJwt);
    expect(text).not.toContain(echoedJwt.split('.')[1]!);
    expect(text).not.toContain(keyLine);
  });
});

async function pollDeadLetters(harness: Harness): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const letters = await harness.bridge.store.listDeadLetters({ limit: 100 });
    if (letters.length > 0) return letters.map((l) => l.reason);
    if (Date.now() > deadline) throw new Error('no dead letter');
    await sleep(20);
  }
}
