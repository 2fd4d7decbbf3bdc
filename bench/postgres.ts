/**
 * Inbound acknowledgement on PostgreSQL: the real bridge (`dist/main.js`) with `DATABASE_URL` on the
 * local PostgreSQL server (127.0.0.1:5432, a fresh database per run, dropped afterwards), loaded
 * exactly like the SQLite row of bench/run.ts (autocannon, signed plain-text pushes, a distinct
 * MsgId and sender per request, a fake Vonage receiving the deliveries meanwhile):
 *
 * - one instance;
 * - three instances on the same database, autocannon spreading its connections over them round robin.
 *
 * `rps`, `p50`, `p99` are the acknowledgement rate and latency (ms) as WeChat would see them; `errors`
 * and `non2xx` should be 0. Every instance and the load generator share this machine's cores, so three
 * instances measure what sharing one database costs rather than a scale-out gain.
 *
 * `npm run build` must have run. bench/run.ts calls `benchPostgres()`; run alone
 * (`node dist-bench/bench/postgres.js`) it also measures SQLite the same way, for comparison.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { weChatSignature } from '../src/wechat/signature';
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { freePort, waitForHttp } from '../test/support/net';
import { createTestDatabase } from '../test/support/postgres';

const ROOT = path.resolve(__dirname, '../..');
const TOKEN = 'benchtoken';
const APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';

export interface PostgresBenchRow {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  /** Connection errors and timeouts. */
  errors: number;
  /** Answers other than 2xx (a 503 means the store could not take the message in time). */
  non2xx: number;
}

export interface PostgresBenchOptions {
  /** Seconds of load per row. Default BENCH_DURATION or 10. */
  durationS?: number;
  /** Concurrent connections (rounded up to a multiple of the instance count). Default BENCH_CONNECTIONS or 50. */
  connections?: number;
  /** Also measure one instance on SQLite first, the same way (for a standalone run). Default false. */
  withSqlite?: boolean;
}

export async function benchPostgres(options: PostgresBenchOptions = {}): Promise<PostgresBenchRow[]> {
  const durationS = options.durationS ?? Number(process.env.BENCH_DURATION ?? 10);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 50);
  const rows: PostgresBenchRow[] = [];
  if (options.withSqlite) {
    const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-sqlite-'));
    try {
      rows.push(
        await measure('bridge ×1: signed text → durable SQLite → success', 1, `sqlite:${path.join(dir, 'bench.db')}`, durationS, connections),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const instances of [1, 3]) {
    const db = await createTestDatabase('bridge_bench');
    try {
      const name = `bridge ×${instances}${instances > 1 ? ' (round robin)' : ''}: signed text → PostgreSQL → success`;
      rows.push(await measure(name, instances, db.url, durationS, connections));
    } finally {
      await db.drop();
    }
  }
  return rows;
}

async function measure(name: string, instances: number, databaseUrl: string, durationS: number, connections: number): Promise<PostgresBenchRow> {
  const keys = testKeyPair();
  const vonage = await startFakeVonage({ publicKeyPem: keys.publicKeyPem, applicationId: APP_ID });
  const children: ChildProcess[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-pg-'));
  try {
    const ports: number[] = [];
    for (let index = 0; index < instances; index += 1) {
      const port = await freePort();
      ports.push(port);
      children.push(
        spawn(process.execPath, [path.join(ROOT, 'dist/main.js')], {
          cwd: dir,
          stdio: 'ignore',
          env: {
            PATH: process.env.PATH ?? '',
            PORT: String(port),
            HOST: '127.0.0.1',
            WECHAT_TOKEN: TOKEN,
            WECHAT_APP_ID: 'wxbench0000000000',
            WECHAT_APP_SECRET: 'bench-secret',
            VONAGE_APPLICATION_ID: APP_ID,
            VONAGE_PRIVATE_KEY: keys.privateKeyPem,
            VONAGE_API_BASE_URL: vonage.baseUrl,
            VONAGE_CONVERSATION_ID: 'CON-bench',
            DATABASE_URL: databaseUrl,
            LOG_LEVEL: 'warn',
          },
        }),
      );
    }
    await Promise.all(ports.map((port) => waitForHttp(`http://127.0.0.1:${port}/healthz`)));

    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = '424242';
    const query = new URLSearchParams({ signature: weChatSignature([TOKEN, timestamp, nonce]), timestamp, nonce, openid: 'oBenchUser' });
    // A distinct id per request ([<id>]) as MsgId and in the sender's openid: nothing is deduplicated
    // away and no user's ordering serialises the load (as in bench/run.ts).
    const body =
      '<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBenchUser[<id>]]]></FromUserName>' +
      `<CreateTime>${timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the benchmark]]></Content>` +
      '<MsgId>[<id>]</MsgId></xml>';
    const urls = ports.map((port) => `http://127.0.0.1:${port}/weChatEvent?${query}`);
    const result = await autocannon({
      // autocannon spreads connections over several URLs (its README); @types/autocannon only says string.
      url: (urls.length === 1 ? urls[0]! : urls) as string,
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body,
      idReplacement: true,
      connections: Math.ceil(connections / instances) * instances,
      duration: durationS,
    });
    return {
      name,
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      errors: result.errors + result.timeouts,
      non2xx: result.non2xx,
    };
  } finally {
    await Promise.all(children.map(stop));
    await vonage.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

if (require.main === module) {
  benchPostgres({ withSqlite: true })
    .then((rows) => {
      const lines = [
        '| server | requests/s | p50 ms | p99 ms | errors | non-2xx |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
        ...rows.map((r) => `| ${r.name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.errors} | ${r.non2xx} |`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    })
    .catch((error: unknown) => {
      process.stderr.write(`bench failed: ${String(error)}\n`);
      process.exit(1);
    });
}
