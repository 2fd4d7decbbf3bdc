import { createMetrics } from '../../src/metrics';

describe('createMetrics', () => {
  const stats = { depth: { 'deliver-to-vonage': 3, 'send-to-wechat': 1 }, oldestAgeMs: 2500, deadLetters: 2 };

  test('counts, histograms and queue gauges appear in the Prometheus text format', async () => {
    let t = 1_000_000;
    const metrics = createMetrics({ queueStats: async () => stats, now: () => t });
    metrics.received('inbound');
    metrics.received('inbound');
    metrics.acknowledged('inbound', 'stored', 0.004);
    metrics.acknowledged('inbound', 'duplicate', 0.002);
    metrics.delivered('inbound', 0.3);
    metrics.failed('outbound', 'wechat', '45015');
    metrics.deadLettered('inbound');
    metrics.remoteError('vonage', '429');
    metrics.tokenRefreshed();
    metrics.tokenConflict();
    metrics.userMessage('oA', 'CON-1');
    metrics.userMessage('oB', 'CON-1');
    t += 2 * 60 * 60_000; // two hours later oA writes again
    metrics.userMessage('oA', 'CON-2');

    const text = await metrics.registry.metrics();
    expect(text).toContain('wechat_bridge_messages_received_total{direction="inbound"} 2');
    expect(text).toContain('wechat_bridge_messages_acknowledged_total{direction="inbound"} 2');
    expect(text).toContain('wechat_bridge_messages_deduplicated_total{direction="inbound"} 1');
    expect(text).toContain('wechat_bridge_messages_delivered_total{direction="inbound"} 1');
    expect(text).toContain('wechat_bridge_messages_failed_total{direction="outbound",remote="wechat",code="45015"} 1');
    expect(text).toContain('wechat_bridge_messages_dead_lettered_total{direction="inbound"} 1');
    expect(text).toContain('wechat_bridge_remote_errors_total{remote="vonage",code="429"} 1');
    expect(text).toContain('wechat_bridge_wechat_token_refreshes_total 1');
    expect(text).toContain('wechat_bridge_wechat_token_conflicts_total 1');
    expect(text).toContain('wechat_bridge_acknowledgement_seconds_bucket{le="0.005",direction="inbound"} 2');
    expect(text).toContain('wechat_bridge_queue_depth{kind="deliver-to-vonage"} 3');
    expect(text).toContain('wechat_bridge_queue_oldest_age_seconds 2.5');
    expect(text).toContain('wechat_bridge_dead_letters 2');
    expect(text).toContain('wechat_bridge_conversation_messages_total{conversation_id="CON-1"} 2');
    expect(text).toContain('wechat_bridge_active_wechat_users{window="1h"} 1');
    expect(text).toContain('wechat_bridge_active_wechat_users{window="24h"} 2');
    expect(text).toMatch(/wechat_bridge_process_resident_memory_bytes \d+/);
    expect(text).toMatch(/wechat_bridge_nodejs_eventloop_lag_seconds /);
  });

  test('two bridges in one process keep separate registries', async () => {
    const a = createMetrics({ queueStats: async () => stats });
    const b = createMetrics({ queueStats: async () => stats });
    a.received('outbound');
    expect(await b.registry.metrics()).not.toContain('wechat_bridge_messages_received_total{direction="outbound"} 1');
    expect(await a.registry.metrics()).toContain('wechat_bridge_messages_received_total{direction="outbound"} 1');
  });
});
