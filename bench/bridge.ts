/**
 * The real bridge as the bench runs it (`dist/main.js` as `npm start` runs it, a child process on
 * this Node), the signed WeChat pushes it is loaded with, and the log of what reached the fake Vonage.
 *
 * Message ids: every load on one bridge process gets its own `stream` (0..89), and a message's
 * MsgId is `<10 + stream><seq>`: the two-digit prefix keeps the ids of two loads apart, so a
 * warm-up's messages are never taken for duplicates of the measured ones.
 */
import autocannon from 'autocannon';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { weChatSignature } from '../src/wechat/signature';
import type { FakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { freePort } from '../test/support/net';
import { runPaced, type PacedResult } from './paced';
import { bridgeNodeArgs, type ChildProcesses, type ServerProcess } from './processes';

export const ROOT = path.resolve(__dirname, '../..');
export const WECHAT_TOKEN = 'benchtoken';
export const WECHAT_APP_ID = 'wxbench0000000000';
export const WECHAT_APP_SECRET = 'bench-app-secret-0123456789abcdef';
export const VONAGE_APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
export const CONVERSATION_ID = 'CON-bench';
export const SIGNATURE_SECRET = 'bench-signature-secret-0123456789';
/** Paced inbound traffic comes from this many WeChat users (per-user ordering is exercised). */
export const PACED_USERS = 1000;

export interface BridgeOptions {
  processes: ChildProcesses;
  name: string;
  vonage: FakeVonage;
  /** Default: a fresh SQLite file in the bridge's temporary directory. */
  databaseUrl?: string;
  /** The fake WeChat API (outbound); default an address nothing listens on. */
  weChatBaseUrl?: string;
  /** Sets VONAGE_SIGNATURE_SECRET (outbound events must then be signed). */
  signed?: boolean;
  /** Node arguments (default BENCH_NODE_ARGS). */
  nodeArgs?: string[];
}

export interface RunningBridge {
  server: ServerProcess;
  port: number;
  /** Stops the process and deletes its temporary directory. */
  stop(): Promise<void>;
}

export async function startBridge(options: BridgeOptions): Promise<RunningBridge> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-'));
  const port = await freePort();
  const server = options.processes.start(options.name, path.join(ROOT, 'dist/main.js'), {
    nodeArgs: options.nodeArgs ?? bridgeNodeArgs(),
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      WECHAT_TOKEN,
      WECHAT_APP_ID,
      WECHAT_APP_SECRET,
      WECHAT_API_BASE_URL: options.weChatBaseUrl ?? 'http://127.0.0.1:9',
      VONAGE_APPLICATION_ID: VONAGE_APP_ID,
      VONAGE_PRIVATE_KEY: testKeyPair().privateKeyPem,
      VONAGE_API_BASE_URL: options.vonage.baseUrl,
      VONAGE_CONVERSATION_ID: CONVERSATION_ID,
      ...(options.signed ? { VONAGE_SIGNATURE_SECRET: SIGNATURE_SECRET } : {}),
      DATABASE_URL: options.databaseUrl ?? `sqlite:${path.join(dir, 'bench.db')}`,
      LOG_LEVEL: 'warn',
    },
  });
  const stop = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await server.ready(`http://127.0.0.1:${port}/healthz`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { server, port, stop };
}

/** Starts one baseline server (`bare-http`, `bare-express` or `node-webot`) as a child process. */
export async function startBaseline(processes: ChildProcesses, name: string, script: 'bare-http' | 'bare-express' | 'node-webot'): Promise<{ server: ServerProcess; port: number }> {
  const port = await freePort();
  const server = processes.start(name, path.join(__dirname, `${script}.js`), { env: { PATH: process.env.PATH ?? '', PORT: String(port), WECHAT_TOKEN } });
  await server.ready(`http://127.0.0.1:${port}/`);
  return { server, port };
}

// --- signed pushes -------------------------------------------------------------------------------------

/**
 * `signature`, `timestamp`, `nonce`, `openid` as WeChat sends them: every push its own nonce, since
 * the bridge refuses a signed query that comes again with another message (a replayed credential).
 * The timestamp is a current second (the bridge refuses timestamps 5 min off).
 */
export function signedQuery(timestamp: string, nonce: string, openid: string): string {
  return new URLSearchParams({ signature: weChatSignature([WECHAT_TOKEN, timestamp, nonce]), timestamp, nonce, openid }).toString();
}

export const msgIdOf = (stream: number, seq: number | string) => `${10 + stream}${seq}`;

function textXml(openid: string, msgId: string, createTime: string): string {
  return (
    `<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
    `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the benchmark]]></Content>` +
    `<MsgId>${msgId}</MsgId></xml>`
  );
}

/** A signed plain-text push (as `runPaced` wants it) from one of `PACED_USERS` users. */
export function pacedPush(stream: number, seq: number): { msgId: string; path: string; body: string; headers: Record<string, string> } {
  const now = Date.now();
  const openid = `oBenchUser${seq % PACED_USERS}`;
  const msgId = msgIdOf(stream, seq);
  return {
    msgId,
    path: `/weChatEvent?${signedQuery(String(Math.floor(now / 1000)), msgId, openid)}`,
    body: textXml(openid, msgId, String(Math.floor(now / 1000))),
    headers: { 'content-type': 'text/xml' },
  };
}

export interface ClosedLoopRow {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** 2xx answers in all. */
  acknowledged: number;
}

/**
 * autocannon at `connections` for `durationS`, signed plain-text pushes; every request its own MsgId
 * and sender (autocannon's `[<id>]`), so nothing is deduplicated away and no user's ordering
 * serialises the load. Several ports: autocannon spreads its connections over them round robin.
 */
export async function autocannonPushes(name: string, ports: number[], stream: number, durationS: number, connections: number): Promise<ClosedLoopRow> {
  const now = Date.now();
  const openid = `oBench${10 + stream}u[<id>]`;
  const timestamp = String(Math.floor(now / 1000));
  const urls = ports.map((port) => `http://127.0.0.1:${port}/weChatEvent?${signedQuery(timestamp, msgIdOf(stream, 0), 'oBenchUser')}`);
  let sent = 0;
  const result = await autocannon({
    // autocannon spreads connections over several URLs (its README); @types/autocannon only says string.
    url: (urls.length === 1 ? urls[0]! : urls) as string,
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body: textXml(openid, msgIdOf(stream, '[<id>]'), String(Math.floor(now / 1000))),
    idReplacement: true,
    // Each request signed with its own nonce (see signedQuery); the body's ids come from `[<id>]`.
    requests: [{ setupRequest: (request) => ({ ...request, path: `/weChatEvent?${signedQuery(timestamp, msgIdOf(stream, (sent += 1)), 'oBenchUser')}` }) }],
    connections: Math.ceil(connections / ports.length) * ports.length,
    duration: durationS,
  });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    acknowledged: result['2xx'],
  };
}

/** A paced load of signed pushes; every answered push's send time is noted in `log` (if given). */
export function pacedPushes(port: number, stream: number, rate: number, durationS: number, connections: number, log?: DeliveryLog): Promise<PacedResult> {
  const ids: string[] = [];
  return runPaced({
    port,
    rate,
    durationS,
    connections,
    request: (seq) => {
      const push = pacedPush(stream, seq);
      ids[seq] = push.msgId;
      return push;
    },
    onAnswer: (seq, status, _latency, sentAtMs) => {
      if (log && status >= 200 && status < 300) log.noteSent(ids[seq]!, sentAtMs);
    },
  });
}

// --- what reached Vonage -------------------------------------------------------------------------------

/**
 * Matches the inbound custom events the fake Vonage received (by `msg_id`) to when their pushes
 * were sent: end-to-end delivery latency, WeChat push → Vonage event. The emulator's `events` list
 * is consumed as it is read, so that a long soak does not pile events up in the bench process.
 */
export class DeliveryLog {
  private readonly sentAt = new Map<string, number>();
  /** Received before the push's answer reached us (the bridge delivers before it answers, sometimes). */
  private readonly unmatchedReceipts = new Map<string, number>();
  private readonly seen = new Set<string>();
  private latencies: number[] = [];
  /** Distinct inbound messages received by the fake Vonage since the start. */
  delivered = 0;
  /** Events for a message already received (exactly-once delivery says: 0). */
  duplicates = 0;
  /** Epoch ms of the latest one. */
  lastDeliveryAt = 0;

  constructor(private readonly vonage: FakeVonage) {}

  noteSent(msgId: string, sentAtMs: number): void {
    const receivedAt = this.unmatchedReceipts.get(msgId);
    if (receivedAt === undefined) {
      this.sentAt.set(msgId, sentAtMs);
    } else {
      this.unmatchedReceipts.delete(msgId);
      this.latencies.push(receivedAt - sentAtMs);
    }
  }

  /** Reads the events received so far. */
  collect(): void {
    const events = this.vonage.events.splice(0);
    for (const event of events) {
      const msgId = event.body.msg_id;
      if (event.body.direction !== 'inbound' || typeof msgId !== 'string') continue;
      if (this.seen.has(msgId)) {
        this.duplicates += 1;
        continue;
      }
      this.seen.add(msgId);
      this.delivered += 1;
      this.lastDeliveryAt = Math.max(this.lastDeliveryAt, event.receivedAt);
      const sent = this.sentAt.get(msgId);
      if (sent === undefined) {
        this.unmatchedReceipts.set(msgId, event.receivedAt);
      } else {
        this.sentAt.delete(msgId);
        this.latencies.push(event.receivedAt - sent);
      }
    }
  }

  /** The end-to-end latencies (ms) matched since the last call. */
  takeLatencies(): number[] {
    this.collect();
    const taken = this.latencies;
    this.latencies = [];
    return taken;
  }

  /** Waits until `n` distinct inbound messages have arrived in all; false on timeout. */
  async waitForDelivered(n: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.collect();
      if (this.delivered >= n) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Forgets what was not matched (messages whose deliveries are no longer waited for, autocannon's unnoted ones). */
  forgetUnmatched(): void {
    this.sentAt.clear();
    this.unmatchedReceipts.clear();
  }
}
