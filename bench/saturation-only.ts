/**
 * `npm run bench:saturation`: only the saturation rows of `npm run bench` (the bridge beside bare
 * node:http, bare Express and node-webot/wechat, alternating rounds, pinned as there), printed as
 * they come. For iterating on throughput: a full run takes half an hour. BENCH_DURATION,
 * BENCH_ROUNDS and BENCH_CONNECTIONS as for the full bench; BENCH_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof" profiles the bridge.
 */
import { ChildProcesses, pinBenchProcess } from './processes';
import { saturation } from './saturation';
import { numberSetting, SERVER_NAMES } from './settings';

async function main(): Promise<void> {
  pinBenchProcess();
  const processes = new ChildProcesses();
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const result = await saturation({
      processes,
      names: SERVER_NAMES,
      rounds: numberSetting('BENCH_ROUNDS', 2, 1),
      durationS: numberSetting('BENCH_DURATION', 10, 1),
      warmUpS: 3,
      connections: numberSetting('BENCH_CONNECTIONS', 50, 1),
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
