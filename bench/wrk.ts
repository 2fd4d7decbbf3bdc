/**
 * Closed-loop load with wrk (one thread, C code: the load generator costs the measured core nothing
 * and far less than autocannon on its own), falling back to autocannon when wrk is not installed.
 *
 * wrk's Lua `request()` builds every push with its own MsgId and sender, so nothing is deduplicated
 * away and no user's ordering serialises the load. Each push also gets its own signed query (its own
 * nonce, as from WeChat: the bridge refuses a signed query reused for another message); wrk's Lua has
 * no SHA-1, so the queries are signed here beforehand, one per line of a file the script reads at
 * start. `done()` prints the summary as one JSON line, including the share of answers slower than `slowMs`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { autocannonPushes, msgIdOf, signedQuery, type ClosedLoopRow } from './bridge';

/** True when `wrk` runs here (BENCH_LOAD=autocannon forces the fallback). */
export const hasWrk = (): boolean => process.env.BENCH_LOAD !== 'autocannon' && spawnSync('wrk', ['--version']).error === undefined;

export interface WrkRow extends ClosedLoopRow {
  /** Slowest answer, ms. */
  max: number;
  /** Share of the answers (and timeouts) that took longer than `slowMs`. */
  slowShare: number;
}

const luaString = (text: string) => JSON.stringify(text);

/** More signed queries than any server answers per second here, times the duration; reused round robin beyond. */
const SIGNED_QUERIES_PER_S = 25_000;

function luaScript(stream: number, createTime: string, slowMs: number, queriesFile: string): string {
  const prefix = msgIdOf(stream, '');
  return `
local queries = {}
for line in io.lines(${luaString(queriesFile)}) do queries[#queries + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  local id = ${luaString(prefix)} .. counter
  local path = "/weChatEvent?" .. queries[(counter - 1) % #queries + 1]
  local body = "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[oBench" .. id .. "]]></FromUserName>" ..
    "<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the benchmark]]></Content>" ..
    "<MsgId>" .. id .. "</MsgId></xml>"
  return wrk.format("POST", path, { ["Content-Type"] = "text/xml" }, body)
end
done = function(summary, latency, requests)
  local slow_us = ${slowMs * 1000}
  local share = 0
  if latency.max > slow_us then
    local lo, hi = 0, 100
    for _ = 1, 30 do
      local mid = (lo + hi) / 2
      if latency:percentile(mid) > slow_us then hi = mid else lo = mid end
    end
    share = (100 - hi) / 100
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"slow_share":%.6f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, share))
end
`;
}

interface WrkSummary {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  slow_share: number;
}

/** wrk with one thread at `connections` for `durationS` against one port; answers slower than `timeoutS` count as timeouts. */
export async function wrkPushes(
  name: string,
  port: number,
  stream: number,
  durationS: number,
  connections: number,
  options: { slowMs?: number; timeoutS?: number } = {},
): Promise<WrkRow> {
  const now = Date.now();
  const timestamp = String(Math.floor(now / 1000));
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-wrk-'));
  const script = path.join(dir, 'pushes.lua');
  const queriesFile = path.join(dir, 'queries.txt');
  const queries: string[] = [];
  for (let i = 1; i <= durationS * SIGNED_QUERIES_PER_S; i += 1) queries.push(signedQuery(timestamp, msgIdOf(stream, i), 'oBenchUser'));
  writeFileSync(queriesFile, `${queries.join('\n')}\n`);
  writeFileSync(script, luaScript(stream, timestamp, options.slowMs ?? 5000, queriesFile));
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        'wrk',
        ['-t1', `-c${connections}`, `-d${durationS}s`, `--timeout`, `${options.timeoutS ?? 10}s`, '-s', script, `http://127.0.0.1:${port}/weChatEvent`],
        { maxBuffer: 1024 * 1024, timeout: (durationS + 60) * 1000 },
        (error, out, err) => (error ? reject(new Error(`wrk failed: ${error.message} ${err}`)) : resolve(out)),
      );
    });
    const line = stdout.split('\n').find((text) => text.startsWith('WRK_RESULT '));
    if (line === undefined) throw new Error(`wrk printed no result:\n${stdout}`);
    const summary = JSON.parse(line.slice('WRK_RESULT '.length)) as WrkSummary;
    const errors = summary.connect + summary.read + summary.write + summary.timeout;
    return {
      name,
      rps: summary.requests / (summary.duration_us / 1e6),
      p50: summary.p50_us / 1000,
      p99: summary.p99_us / 1000,
      max: summary.max_us / 1000,
      errors,
      non2xx: summary.status,
      acknowledged: Math.max(0, summary.requests - summary.status),
      // A timeout is an answer later than the timeout, so later than `slowMs` too.
      slowShare: (summary.slow_share * summary.requests + summary.timeout) / Math.max(1, summary.requests + summary.timeout),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The saturation load: wrk when installed, autocannon otherwise. */
export function closedLoopPushes(name: string, port: number, stream: number, durationS: number, connections: number): Promise<ClosedLoopRow> {
  return hasWrk() ? wrkPushes(name, port, stream, durationS, connections) : autocannonPushes(name, [port], stream, durationS, connections);
}
