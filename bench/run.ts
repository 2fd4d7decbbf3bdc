/**
 * `npm run bench`: inbound acknowledgement rate and latency of the real bridge (`dist/main.js`,
 * durable SQLite storage on, signed plain-text WeChat pushes), beside a bare Express route
 * measured in the same run on the same machine. Prints a table and writes bench/results/latest.md.
 *
 * Both servers run as child processes; autocannon and the fake Vonage run here.
 */
import autocannon from 'autocannon';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { weChatSignature } from '../src/wechat/signature';
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { freePort, waitForHttp } from '../test/support/net';
import { benchOutbound } from './outbound';

const ROOT = path.resolve(__dirname, '../..');
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const TOKEN = 'benchtoken';
const APP_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  rssMb: number | undefined;
}

/** Resident memory of a process, from /proc (Linux), sampled while the load runs. */
function rssMb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function load(name: string, port: number, child: ChildProcess): Promise<Row> {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = '424242';
  const query = new URLSearchParams({ signature: weChatSignature([TOKEN, timestamp, nonce]), timestamp, nonce, openid: 'oBenchUser' });
  // Every request gets its own id ([<id>] is replaced per request) as MsgId and in the sender's openid,
  // so nothing is deduplicated away and no user's ordering serialises the load.
  const body =
    '<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBenchUser[<id>]]]></FromUserName>' +
    `<CreateTime>${timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the benchmark]]></Content>` +
    '<MsgId>[<id>]</MsgId></xml>';
  let peakRss = 0;
  const sampler = setInterval(() => {
    const value = child.pid ? rssMb(child.pid) : undefined;
    if (value !== undefined) peakRss = Math.max(peakRss, value);
  }, 200);
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/weChatEvent?${query}`,
    method: 'POST',
    headers: { 'content-type': 'text/xml' },
    body,
    idReplacement: true,
    connections: CONNECTIONS,
    duration: DURATION_S,
  });
  clearInterval(sampler);
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    rssMb: peakRss || undefined,
  };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function main(): Promise<void> {
  const rows: Row[] = [];

  // Baseline: bare Express 5.
  const barePort = await freePort();
  const bare = fork(path.join(__dirname, 'bare-express.js'), [], { env: { ...process.env, PORT: String(barePort) }, stdio: 'ignore' });
  await waitForHttp(`http://127.0.0.1:${barePort}/`);
  await load('warm-up', barePort, bare); // the first run on a cold machine is always slower
  rows.push(await load('bare Express 5 route (baseline)', barePort, bare));
  await stop(bare);

  // The bridge, as `npm start` runs it, with durable SQLite storage and a fake Vonage to deliver to.
  const keys = testKeyPair();
  const vonage = await startFakeVonage({ publicKeyPem: keys.publicKeyPem, applicationId: APP_ID });
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-'));
  const bridgePort = await freePort();
  // BENCH_NODE_ARGS lets a developer profile the bridge, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const bridge = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'dist/main.js')], {
    cwd: dir,
    stdio: 'ignore',
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(bridgePort),
      HOST: '127.0.0.1',
      WECHAT_TOKEN: TOKEN,
      WECHAT_APP_ID: 'wxbench0000000000',
      WECHAT_APP_SECRET: 'bench-secret',
      VONAGE_APPLICATION_ID: APP_ID,
      VONAGE_PRIVATE_KEY: keys.privateKeyPem,
      VONAGE_API_BASE_URL: vonage.baseUrl,
      VONAGE_CONVERSATION_ID: 'CON-bench',
      DATABASE_URL: `sqlite:${path.join(dir, 'bench.db')}`,
      LOG_LEVEL: 'warn',
    },
  });
  await waitForHttp(`http://127.0.0.1:${bridgePort}/healthz`);
  rows.push(await load('bridge: signed text → durable SQLite → success', bridgePort, bridge));
  await stop(bridge);
  await vonage.close();
  rmSync(dir, { recursive: true, force: true });

  const base = rows[0]!;
  const header = '| server | requests/s | × baseline | p50 ms | p99 ms | errors | non-2xx | peak RSS MB |';
  const lines = [
    `Inbound acknowledgement, ${CONNECTIONS} connections, ${DURATION_S} s each, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
    '',
    header,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.rps.toFixed(0)} | ${(r.rps / base.rps).toFixed(2)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.errors} | ${r.non2xx} | ${r.rssMb?.toFixed(0) ?? 'n/a'} |`,
    ),
  ];
  // Outbound relay: RTC events in → WeChat sends out (fake WeChat answering at once), signed as Vonage signs.
  const outbound = await benchOutbound();
  lines.push(
    '',
    `Outbound relay (RTC event → WeChat custom/send, queue drained), ${CONNECTIONS} connections, ${DURATION_S} s`,
    '',
    '| path | relayed/s | × inbound baseline | ack p50 ms | ack p99 ms | token fetches per 10,000 sends |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    `| ${outbound.name} | ${outbound.rps.toFixed(0)} | ${(outbound.rps / base.rps).toFixed(2)} | ${outbound.p50.toFixed(1)} | ${outbound.p99.toFixed(1)} | ${outbound.tokenFetchesPer10k.toFixed(1)} |`,
  );
  const table = lines.join('\n');
  process.stdout.write(`\n${table}\n`);
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/latest.md'), `${table}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${String(error)}\n`);
  process.exit(1);
});
