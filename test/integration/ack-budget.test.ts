/**
 * The acknowledgement budget counts from a request's arrival, not from when its body was parsed:
 * a push whose body trickles in is answered `503` once the budget is spent, never late with
 * `success`; and with too many requests already waiting, the next one is answered `503` at once.
 * The bridge is real (startBridge with its SQLite store), the client a raw TCP socket on loopback.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { startHarness, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { sleep, waitFor } from '../support/wait';
import { pushToBridge, signedPush } from '../support/wechat-push';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');
const BUDGET_MS = 600;
const withMsgId = (msgId: string) => TEXT.replace(/<MsgId>\d+<\/MsgId>/, `<MsgId>${msgId}</MsgId>`);

interface SlowPush {
  socket: Socket;
  /** `performance.now()` when the headers were written (the request's arrival, give or take loopback). */
  sentAt: number;
  /** Resolves with the status line and when it arrived. */
  answer: Promise<{ statusLine: string; at: number }>;
  /** Writes the rest of the body. */
  finish(): void;
}

/** Every client socket, destroyed after each test so that a failed one cannot hold the server open. */
const sockets: Socket[] = [];

/** A signed push whose headers go at once and whose body stops after its first bytes. */
function startSlowPush(port: number, xml: string): SlowPush {
  const push = signedPush(xml, { token: TEST_TOKEN });
  const body = Buffer.from(push.body);
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  const sentAt = performance.now();
  socket.write(
    `POST ${push.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\nContent-Length: ${body.length}\r\n\r\n` +
      body.subarray(0, 10).toString('latin1'),
  );
  const answer = new Promise<{ statusLine: string; at: number }>((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) resolve({ statusLine: text.slice(0, end), at: performance.now() });
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without an answer')));
  });
  answer.catch(() => undefined);
  return {
    socket,
    sentAt,
    answer,
    finish: () => {
      if (!socket.destroyed) socket.write(body.subarray(10));
    },
  };
}

describe('acknowledgement budget', () => {
  let harness: Harness;
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await harness.close();
  });

  it('starts at arrival: a body that arrives after the budget gets 503 by the deadline, not a late success', async () => {
    harness = await startHarness({ bridgeOptions: { ackTimeoutMs: BUDGET_MS } });
    const slow = startSlowPush(harness.bridge.port, withMsgId('7000000000000000001'));
    // The rest of the body comes after the budget is spent: answering then would already be late.
    const finishing = sleep(BUDGET_MS + 300).then(() => slow.finish());

    const { statusLine, at } = await slow.answer;
    expect(statusLine).toBe('HTTP/1.1 503 Service Unavailable');
    const elapsed = at - slow.sentAt;
    expect(elapsed).toBeGreaterThanOrEqual(BUDGET_MS - 50);
    expect(elapsed).toBeLessThan(BUDGET_MS + 250);
    await finishing;

    // WeChat's retry of the same message is stored and delivered once.
    const retry = await pushToBridge(harness.baseUrl, withMsgId('7000000000000000001'), { token: TEST_TOKEN });
    expect(retry).toEqual({ status: 200, text: 'success' });
    await waitFor('delivery', () => harness.vonage.events.length === 1);
    await sleep(200);
    expect(harness.vonage.events.map((event) => event.body.msg_id)).toEqual(['7000000000000000001']);
    expect(harness.logs.join('')).toContain('acknowledgement could not be made in time');
  });

  it('answers 503 at once when too many requests are already waiting for their answer', async () => {
    harness = await startHarness({ bridgeOptions: { ackTimeoutMs: 5_000, maxPendingAcks: 2 } });
    const waiting = [startSlowPush(harness.bridge.port, withMsgId('7000000000000000002')), startSlowPush(harness.bridge.port, withMsgId('7000000000000000003'))];
    await sleep(100);

    const startedAt = performance.now();
    const shed = await pushToBridge(harness.baseUrl, withMsgId('7000000000000000004'), { token: TEST_TOKEN });
    expect(shed.status).toBe(503);
    expect(performance.now() - startedAt).toBeLessThan(1_000);

    // The two admitted requests are still served: their bodies complete and they are stored.
    for (const push of waiting) push.finish();
    const answers = await Promise.all(waiting.map((push) => push.answer));
    expect(answers.map((answer) => answer.statusLine)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);

    // Once they are answered there is room again.
    const after = await pushToBridge(harness.baseUrl, withMsgId('7000000000000000004'), { token: TEST_TOKEN });
    expect(after).toEqual({ status: 200, text: 'success' });
    await waitFor('delivery', () => harness.vonage.events.length === 3);
    expect(harness.vonage.events.map((event) => event.body.msg_id).sort()).toEqual(['7000000000000000002', '7000000000000000003', '7000000000000000004']);
  });
});
