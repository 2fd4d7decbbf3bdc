/**
 * `/metrics` through the real bridge: what happened on the wire shows up in the Prometheus text.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startHarness, TEST_TOKEN, type Harness } from '../support/bridge-harness';
import { outboundMessage, postRtcEvent } from '../support/rtc-events';
import { pushToBridge } from '../support/wechat-push';
import { sleep } from '../support/wait';

const TEXT = readFileSync(path.join(__dirname, '../fixtures/messages/official/text.xml'), 'utf8');

async function scrape(harness: Harness): Promise<string> {
  const response = await fetch(`${harness.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return response.text();
}

/** Polls until `pattern` is in the metrics (counters are updated right after each outcome is stored). */
async function scrapeUntil(harness: Harness, pattern: RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    text = await scrape(harness);
    if (pattern.test(text)) return text;
    await sleep(50);
  }
  throw new Error(`metrics never matched ${pattern}:\n${text}`);
}

describe('/metrics', () => {
  let harness: Harness;
  beforeEach(async () => {
    harness = await startHarness();
  });
  afterEach(() => harness.close());

  test('inbound: received, acknowledged, deduplicated, delivered, latency, analytics', async () => {
    for (let i = 0; i < 2; i++) await pushToBridge(harness.baseUrl, TEXT, { token: TEST_TOKEN });
    await harness.vonage.waitForEvents(1);
    const text = await scrapeUntil(harness, /wechat_bridge_messages_delivered_total\{direction="inbound"\} 1/);
    expect(text).toContain('wechat_bridge_messages_received_total{direction="inbound"} 2');
    expect(text).toContain('wechat_bridge_messages_acknowledged_total{direction="inbound"} 2');
    expect(text).toContain('wechat_bridge_messages_deduplicated_total{direction="inbound"} 1');
    expect(text).toMatch(/wechat_bridge_acknowledgement_seconds_count\{direction="inbound"\} 2/);
    expect(text).toMatch(/wechat_bridge_delivery_seconds_count\{direction="inbound"\} 1/);
    expect(text).toMatch(/wechat_bridge_conversation_messages_total\{conversation_id="CON-[^"]+"\} 1/);
    expect(text).toContain('wechat_bridge_active_wechat_users{window="5m"} 1');
    expect(text).toMatch(/wechat_bridge_queue_depth|wechat_bridge_queue_oldest_age_seconds 0/);
  });

  test('outbound: delivered, refused with its WeChat code, token fetches', async () => {
    await postRtcEvent(harness.baseUrl, outboundMessage('oUser1', { content: 'hello' }));
    await harness.weChat.waitForSends(1);
    harness.weChat.inject('/cgi-bin/message/custom/send', [{ errcode: 45015, errmsg: 'response out of time limit' }]);
    await postRtcEvent(harness.baseUrl, outboundMessage('oUser1', { content: 'too late' }));
    const text = await scrapeUntil(harness, /wechat_bridge_messages_failed_total\{direction="outbound",remote="wechat",code="45015"\} 1/);
    expect(text).toContain('wechat_bridge_messages_delivered_total{direction="outbound"} 1');
    expect(text).toContain('wechat_bridge_remote_errors_total{remote="wechat",code="45015"} 1');
    expect(text).toContain('wechat_bridge_wechat_token_refreshes_total 1');
    expect(text).toContain('wechat_bridge_messages_received_total{direction="outbound"} 2');
  });
});
