/**
 * A burst: 2,000 connections at once on one bridge for a few seconds (wrk opens them all at the
 * start and keeps each one busy). WeChat drops a push that is not answered within 5 s and retries
 * it, so the figure that matters is the share of answers slower than 5 s (target 0); a `503` is an
 * early, honest "try again" (the bridge sheds what it cannot acknowledge in time) and is counted apart.
 * Every acknowledged message must then reach the fake Vonage.
 */
import autocannon from 'autocannon';
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { DeliveryLog, msgIdOf, pacedPush, signedQuery, startBridge, VONAGE_APP_ID } from './bridge';
import type { ChildProcesses } from './processes';
import { hasWrk, wrkPushes } from './wrk';

export const WECHAT_ANSWER_LIMIT_MS = 5000;

export interface BurstResult {
  connections: number;
  durationS: number;
  loadGenerator: 'wrk' | 'autocannon';
  answered: number;
  acknowledged: number;
  shed: number;
  errors: number;
  p99: number;
  max: number;
  /** Share of the answers (and timeouts) slower than 5 s; undefined when the load generator cannot tell. */
  over5sShare: number | undefined;
  delivered: number;
  complete: boolean;
  peakRssMb: number | undefined;
}

export async function benchBurst(options: { processes: ChildProcesses; connections: number; durationS: number; drainTimeoutMs?: number }): Promise<BurstResult> {
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  try {
    const bridge = await startBridge({ processes: options.processes, name: 'bridge (burst)', vonage });
    try {
      const deliveries = new DeliveryLog(vonage);
      let row: { acknowledged: number; non2xx: number; errors: number; p99: number; max: number; slowShare: number | undefined; answered: number };
      if (hasWrk()) {
        const result = await wrkPushes('bridge (burst)', bridge.port, 90, options.durationS, options.connections, { slowMs: WECHAT_ANSWER_LIMIT_MS, timeoutS: 10 });
        row = { ...result, answered: result.acknowledged + result.non2xx };
      } else {
        const result = await autocannonBurst(bridge.port, options.connections, options.durationS);
        row = result;
      }
      bridge.server.assertAlive();
      const complete = await deliveries.waitForDelivered(row.acknowledged, options.drainTimeoutMs ?? 120_000);
      return {
        connections: options.connections,
        durationS: options.durationS,
        loadGenerator: hasWrk() ? 'wrk' : 'autocannon',
        answered: row.answered,
        acknowledged: row.acknowledged,
        shed: row.non2xx,
        errors: row.errors,
        p99: row.p99,
        max: row.max,
        over5sShare: row.slowShare,
        delivered: deliveries.delivered,
        complete,
        peakRssMb: bridge.server.memory()?.peakRssMb,
      };
    } finally {
      await bridge.stop();
    }
  } finally {
    await vonage.close();
  }
}

async function autocannonBurst(port: number, connections: number, durationS: number) {
  const push = pacedPush(90, 0);
  const timestamp = String(Math.floor(Date.now() / 1000));
  let sent = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}${push.path}`,
    method: 'POST',
    headers: push.headers,
    body: push.body.replace(`<MsgId>${push.msgId}</MsgId>`, `<MsgId>${msgIdOf(90, '[<id>]')}</MsgId>`).replace(/oBenchUser\d+/, 'oBurst[<id>]'),
    idReplacement: true,
    // Each push its own nonce, as from WeChat (see signedQuery).
    requests: [{ setupRequest: (request) => ({ ...request, path: `/weChatEvent?${signedQuery(timestamp, msgIdOf(91, (sent += 1)), 'oBurst')}` }) }],
    connections,
    duration: durationS,
    timeout: 10,
  });
  return {
    acknowledged: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    answered: result['2xx'] + result.non2xx,
    p99: result.latency.p99,
    max: result.latency.max,
    // autocannon keeps no histogram this fine: all under 5 s is certain only when the slowest was.
    slowShare: result.latency.max <= WECHAT_ANSWER_LIMIT_MS && result.timeouts === 0 ? 0 : undefined,
  };
}
