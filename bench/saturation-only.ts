/**
 * `npm run bench:saturation`: only the saturation rows of `npm run bench` (the bridge beside bare
 * node:http, bare Express and node-webot/wechat, alternating rounds, pinned as there), printed as
 * they come. For iterating on throughput: a full run takes half an hour. BENCH_DURATION,
 * BENCH_ROUNDS and BENCH_CONNECTIONS as for the full bench; BENCH_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof" profiles the bridge.
 */
import { ChildProcesses, pinBenchProcess } from './processes';
import { saturation } from './saturation';

const setting = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 1) throw new Error(`${name} is not a number ≥ 1`);
  return value;
};

async function main(): Promise<void> {
  pinBenchProcess();
  const processes = new ChildProcesses();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const result = await saturation({
      processes,
      names: { http: 'bare node:http', express: 'bare Express 5', webot: 'node-webot/wechat 2.1.0', bridge: 'bridge (SQLite)' },
      rounds: setting('BENCH_ROUNDS', 2),
      durationS: setting('BENCH_DURATION', 10),
      warmUpS: 3,
      connections: setting('BENCH_CONNECTIONS', 50),
      log,
    });
    const { bridge, webot, express, delivery } = result;
    log(
      `bridge ${bridge.rps.toFixed(0)} req/s acknowledged (p99 ${bridge.p99.toFixed(1)} ms), ${delivery.deliveredPerS.toFixed(0)}/s delivered ` +
        `= ${(delivery.deliveredPerS / webot.rps).toFixed(2)}× node-webot (${webot.rps.toFixed(0)} req/s), ` +
        `${(bridge.rps / express.rps).toFixed(2)}× bare Express; peak RSS ${bridge.peakRssMb ?? '?'} MB; ` +
        `complete ${delivery.complete}, duplicates ${delivery.duplicates}`,
    );
  } finally {
    processes.killAll();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
