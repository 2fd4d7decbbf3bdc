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
 * - `tokenFetchesPer10k`: `stable_token` calls per 10 000 sends (target: 1, the token is shared).
 *
 * `npm run build` must have run (the bench script does it). `bench/run.ts` calls `benchOutbound()`.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { startFakeVonage } from '../test/support/fake-vonage';
import { startFakeWeChat } from '../test/support/fake-wechat';
import { testKeyPair } from '../test/support/keys';
import { freePort, waitForHttp } from '../test/support/net';

const ROOT = path.resolve(__dirname, '../..');
const VONAGE_APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
const WECHAT_APP_ID = 'wxbench0000000000';
const WECHAT_APP_SECRET = 'bench-app-secret-0123456789abcdef';
const SIGNATURE_SECRET = 'bench-signature-secret-0123456789';
const CONVERSATION_ID = 'CON-bench';
const USERS = 200;

export interface OutboundBenchResult {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  tokenFetchesPer10k: number;
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
}

export async function benchOutbound(options: OutboundBenchOptions = {}): Promise<OutboundBenchResult> {
  const durationS = options.durationS ?? Number(process.env.BENCH_DURATION ?? 10);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 50);
  const signed = options.signed ?? true;
  const drainTimeoutMs = options.drainTimeoutMs ?? 120_000;

  const keys = testKeyPair();
  const weChat = await startFakeWeChat({ appId: WECHAT_APP_ID, appSecret: WECHAT_APP_SECRET });
  const vonage = await startFakeVonage({ publicKeyPem: keys.publicKeyPem, applicationId: VONAGE_APP_ID });
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-outbound-'));
  const port = await freePort();
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const bridge = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist/main.js')], {
    cwd: dir,
    stdio: 'ignore',
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      WECHAT_TOKEN: 'benchtoken',
      WECHAT_APP_ID,
      WECHAT_APP_SECRET,
      WECHAT_API_BASE_URL: weChat.baseUrl,
      VONAGE_APPLICATION_ID: VONAGE_APP_ID,
      VONAGE_PRIVATE_KEY: keys.privateKeyPem,
      VONAGE_API_BASE_URL: vonage.baseUrl,
      VONAGE_CONVERSATION_ID: CONVERSATION_ID,
      ...(signed ? { VONAGE_SIGNATURE_SECRET: SIGNATURE_SECRET } : {}),
      DATABASE_URL: `sqlite:${path.join(dir, 'bench.db')}`,
      LOG_LEVEL: 'warn',
    },
  });

  try {
    await Promise.race([waitForHttp(`http://127.0.0.1:${port}/healthz`), exited(bridge)]);
    let nextId = 1;
    const startedAt = Date.now();
    const result = await autocannon({
      url: `http://127.0.0.1:${port}`,
      connections,
      duration: durationS,
      requests: [
        {
          method: 'POST',
          path: '/rtcEvent',
          setupRequest: (request) => {
            const id = nextId++;
            const body = JSON.stringify({
              type: 'custom:wechat:message',
              id,
              conversation_id: CONVERSATION_ID,
              application_id: VONAGE_APP_ID,
              timestamp: new Date().toISOString(),
              from: 'MEM-bench-agent',
              body: { direction: 'outbound', to: `oBenchUser${id % USERS}`, msg_type: 'text', content: `reply number ${id}` },
            });
            const headers: Record<string, string> = { 'content-type': 'application/json' };
            if (signed) headers.authorization = sign(body);
            return { ...request, body, headers };
          },
        },
      ],
    });

    // Every acknowledged event must reach WeChat: the relay rate counts until the queue is drained.
    const acknowledged = result['2xx'];
    const drainDeadline = Date.now() + drainTimeoutMs;
    while (weChat.sent.length < acknowledged && Date.now() < drainDeadline) await sleep(20);
    const elapsedS = (Date.now() - startedAt) / 1000;
    const sends = weChat.sent.length;
    if (sends < acknowledged) {
      process.stderr.write(`bench outbound: only ${sends} of ${acknowledged} acknowledged events reached WeChat in time\n`);
    }
    return {
      name: `bridge: ${signed ? 'signed ' : ''}RTC event → durable SQLite → WeChat custom/send (relayed/s)`,
      rps: sends / elapsedS,
      p50: result.latency.p50,
      p99: result.latency.p99,
      tokenFetchesPer10k: sends === 0 ? Number.NaN : (weChat.tokenFetches / sends) * 10_000,
    };
  } finally {
    await stop(bridge);
    await weChat.close();
    await vonage.close();
    rmSync(dir, { recursive: true, force: true });
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

/** Rejects when the child exits (e.g. a configuration error), so a broken build fails fast. */
function exited(child: ChildProcess): Promise<never> {
  return new Promise((_resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`the bridge exited (${code ?? signal}) before listening`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// `node dist-bench/bench/outbound.js` runs it on its own.
if (require.main === module) {
  benchOutbound().then(
    (row) => process.stdout.write(`${JSON.stringify(row)}\n`),
    (error: unknown) => {
      process.stderr.write(`bench outbound failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
