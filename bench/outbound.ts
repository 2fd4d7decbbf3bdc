/**
 * Outbound relay benchmark: agents' RTC events → the real bridge (`dist/main.js`, durable SQLite)
 * → a fake WeChat API that answers at once, with the status events going to a fake Vonage.
 *
 * autocannon posts `custom:wechat:message` outbound events with distinct ids (spread over 200 WeChat
 * users, so per-user ordering is exercised the way real traffic does), signed by default as Vonage
 * signs them (HS256 JWT with `payload_hash`, a fresh `jti` each). Reported:
 *
 * - `rps`: messages relayed end to end per second, from the first request until the fake WeChat
 *   has accepted every acknowledged event (the queue drained), not just acknowledged;
 * - `p50` / `p99`: acknowledgement latency of `POST /rtcEvent` in ms;
 * - `tokenFetchesPer10k`: `stable_token` calls per 10 000 sends (target: 1, the token is shared);
 * - `cpuMicrosPerMessage`: the bridge's CPU per relayed message, the steadier figure on a shared
 *   machine (autocannon, the fake WeChat and the fake Vonage share the bench process).
 *
 * `npm run build` must have run (the bench script does it). `bench/run.ts` calls `benchOutbound()`.
 */
import autocannon from 'autocannon';
import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { startFakeVonage } from '../test/support/fake-vonage';
import { startFakeWeChat } from '../test/support/fake-wechat';
import { testKeyPair } from '../test/support/keys';
import { CONVERSATION_ID, SIGNATURE_SECRET, startBridge, VONAGE_APP_ID, WECHAT_APP_ID, WECHAT_APP_SECRET } from './bridge';
import { ChildProcesses, type ProcessMemory } from './processes';
import { sleep } from '../test/support/wait';

/** Outbound events go to this many WeChat users. */
export const OUTBOUND_USERS = 200;

export interface OutboundBenchResult {
  name: string;
  /** Relayed per second, until the queue drained. */
  rps: number;
  /** Acknowledgement latency of POST /rtcEvent, ms. */
  p50: number;
  p99: number;
  acknowledged: number;
  non2xx: number;
  errors: number;
  /** custom/send calls the fake WeChat accepted. */
  sends: number;
  /** Every acknowledged event reached WeChat before the drain timeout. */
  drained: boolean;
  tokenFetches: number;
  tokenFetchesPer10k: number;
  /** The bridge's CPU time (all threads) from the first request until drained, per relayed message, µs. */
  cpuMicrosPerMessage: number | undefined;
  memory: ProcessMemory | undefined;
}

export interface OutboundBenchOptions {
  /** Seconds of load. Default BENCH_DURATION or 10. */
  durationS?: number;
  /** Concurrent connections. Default BENCH_CONNECTIONS or 50. */
  connections?: number;
  /** Sign requests (and set VONAGE_SIGNATURE_SECRET on the bridge). Default true. */
  signed?: boolean;
  /** How long to wait for the queue to drain after the load. Default 120 s. */
  drainTimeoutMs?: number;
  /** Who owns the bridge process (the run's, so that an interrupted run stops it); default its own. */
  processes?: ChildProcesses;
}

/** An agent's outbound text as Vonage delivers it to the RTC event_url: the JSON body and its headers. */
export function outboundEventRequest(id: number, signed: boolean): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify({
    type: 'custom:wechat:message',
    id,
    conversation_id: CONVERSATION_ID,
    application_id: VONAGE_APP_ID,
    timestamp: new Date().toISOString(),
    from: 'MEM-bench-agent',
    body: { direction: 'outbound', to: `oBenchUser${id % OUTBOUND_USERS}`, msg_type: 'text', content: `reply number ${id}` },
  });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signed) headers.authorization = sign(body);
  return { body, headers };
}

export async function benchOutbound(options: OutboundBenchOptions = {}): Promise<OutboundBenchResult> {
  const durationS = options.durationS ?? Number(process.env.BENCH_DURATION ?? 10);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 50);
  const signed = options.signed ?? true;
  const drainTimeoutMs = options.drainTimeoutMs ?? 120_000;
  const processes = options.processes ?? new ChildProcesses();

  const weChat = await startFakeWeChat({ appId: WECHAT_APP_ID, appSecret: WECHAT_APP_SECRET });
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  try {
    const bridge = await startBridge({ processes, name: 'bridge (outbound)', vonage, weChatBaseUrl: weChat.baseUrl, signed });
    try {
      let nextId = 1;
      const cpuAtStart = bridge.server.cpuSeconds();
      const startedAt = Date.now();
      const result = await autocannon({
        url: `http://127.0.0.1:${bridge.port}`,
        connections,
        duration: durationS,
        requests: [
          {
            method: 'POST',
            path: '/rtcEvent',
            setupRequest: (request) => ({ ...request, ...outboundEventRequest(nextId++, signed) }),
          },
        ],
      });

      // Every acknowledged event must reach WeChat: the relay rate counts until the queue is drained.
      const acknowledged = result['2xx'];
      const drainDeadline = Date.now() + drainTimeoutMs;
      while (weChat.sent.length < acknowledged && Date.now() < drainDeadline) {
        bridge.server.assertAlive();
        vonage.events.splice(0); // status events: not looked at here, not kept either
        await sleep(20);
      }
      const elapsedS = (Date.now() - startedAt) / 1000;
      const cpuAtEnd = bridge.server.cpuSeconds();
      const sends = weChat.sent.length;
      const memory = bridge.server.memory();
      bridge.server.assertAlive();
      return {
        name: `bridge: ${signed ? 'signed ' : ''}RTC event → durable SQLite → WeChat custom/send`,
        rps: sends / elapsedS,
        p50: result.latency.p50,
        p99: result.latency.p99,
        acknowledged,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        sends,
        drained: sends >= acknowledged,
        tokenFetches: weChat.tokenFetches,
        tokenFetchesPer10k: sends === 0 ? Number.NaN : (weChat.tokenFetches / sends) * 10_000,
        cpuMicrosPerMessage: cpuAtStart === undefined || cpuAtEnd === undefined || sends === 0 ? undefined : ((cpuAtEnd - cpuAtStart) * 1e6) / sends,
        memory,
      };
    } finally {
      await bridge.stop();
    }
  } finally {
    await weChat.close();
    await vonage.close();
    if (!options.processes) processes.killAll();
  }
}

function sign(body: string): string {
  const claims = {
    iat: Math.floor(Date.now() / 1000),
    jti: crypto.randomUUID(),
    iss: 'Vonage',
    application_id: VONAGE_APP_ID,
    payload_hash: crypto.createHash('sha256').update(body).digest('hex'),
  };
  return `Bearer ${jwt.sign(claims, SIGNATURE_SECRET, { algorithm: 'HS256' })}`;
}


// `node dist-bench/bench/outbound.js` runs it on its own.
if (require.main === module) {
  benchOutbound().then(
    (row) => process.stdout.write(`${JSON.stringify(row)}\n`),
    (error: unknown) => {
      process.stderr.write(`bench outbound failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
