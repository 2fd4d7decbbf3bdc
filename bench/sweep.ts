/**
 * Latency at a fixed moderate rate, then under increasing load, for one server (the bridge or a bare
 * baseline), with the open-loop pacer of paced.ts and the same signed pushes for every server.
 *
 * 1. a warm-up (not reported);
 * 2. `fixedRate` for `fixedS` seconds: acknowledgement latency and, for the bridge, end-to-end
 *    delivery latency (push sent → the fake Vonage received the event), at a rate the bridge keeps
 *    up with, so that it measures latency, not queueing;
 * 3. one short step per offered rate, in increasing order.
 *
 * For the bridge, every phase waits until what it acknowledged has reached the fake Vonage (up to
 * `drainTimeoutMs`), so that the next phase starts with an empty queue and every delivered
 * message's latency is counted.
 */
import * as os from 'node:os';
import type { DeliveryLog } from './bridge';
import { pacedPushes } from './bridge';
import type { ServerProcess } from './processes';
import { summarise, type Summary } from './stats';

export interface LoadPoint {
  server: string;
  phase: 'fixed' | 'step';
  offeredRate: number;
  achievedRate: number;
  ack: Summary;
  /** End-to-end delivery latency; the bridge only. */
  e2e: Summary | undefined;
  /** Acknowledged pushes that had not reached the fake Vonage when the wait ended (bridge only). */
  undelivered: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  unsent: number;
  /** The server's CPU use during the phase, % of one core. */
  cpuPercent: number | undefined;
  /** This process's CPU use during the phase (load generator, fake Vonage), % of one core. */
  benchCpuPercent: number;
  /** The machine's 1-minute load average when the phase started. */
  loadAverage: number;
}

export interface SweepOptions {
  name: string;
  server: ServerProcess;
  port: number;
  connections: number;
  warmUp: { rate: number; seconds: number };
  fixedRate: number;
  fixedS: number;
  rates: number[];
  stepS: number;
  /** The bridge's deliveries; absent for the baselines. */
  deliveries?: DeliveryLog;
  drainTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export async function sweep(options: SweepOptions): Promise<LoadPoint[]> {
  const { name, server, port, connections, deliveries } = options;
  const drainTimeoutMs = options.drainTimeoutMs ?? 20_000;
  let stream = 0;
  let acknowledged = 0;

  const phase = async (kind: LoadPoint['phase'], rate: number, seconds: number): Promise<LoadPoint> => {
    const loadAverage = os.loadavg()[0]!;
    const cpuBefore = server.cpuSeconds();
    const benchCpuBefore = process.cpuUsage();
    const startedAt = Date.now();
    const result = await pacedPushes(port, stream++, rate, seconds, connections, deliveries);
    const cpuAfter = server.cpuSeconds();
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const benchCpuPercent = ((benchCpu.user + benchCpu.system) / 1000 / (Date.now() - startedAt)) * 100;
    const cpuPercent =
      cpuBefore === undefined || cpuAfter === undefined ? undefined : ((cpuAfter - cpuBefore) / ((Date.now() - startedAt) / 1000)) * 100;
    server.assertAlive();
    acknowledged += result.ok;
    let e2e: Summary | undefined;
    let undelivered = 0;
    if (deliveries) {
      await deliveries.waitForDelivered(acknowledged, drainTimeoutMs);
      undelivered = Math.max(0, acknowledged - deliveries.delivered);
      e2e = summarise(deliveries.takeLatencies());
      deliveries.forgetUnmatched();
      // Late deliveries of this phase must not count as the next one's.
      acknowledged = deliveries.delivered + undelivered;
    }
    return {
      server: name,
      phase: kind,
      offeredRate: rate,
      achievedRate: result.achievedRate,
      ack: summarise(result.latenciesMs),
      e2e,
      undelivered,
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      unsent: result.unsent,
      cpuPercent,
      benchCpuPercent,
      loadAverage,
    };
  };

  await phase('fixed', options.warmUp.rate, options.warmUp.seconds);
  const points: LoadPoint[] = [];
  const fixed = await phase('fixed', options.fixedRate, options.fixedS);
  points.push(fixed);
  options.log?.(`  ${name}: ${describe(fixed)}`);
  for (const rate of options.rates) {
    const point = await phase('step', rate, options.stepS);
    points.push(point);
    options.log?.(`  ${name}: ${describe(point)}`);
  }
  return points;
}

function describe(point: LoadPoint): string {
  const e2e = point.e2e && point.e2e.count > 0 ? `, e2e p50 ${point.e2e.p50.toFixed(1)} p99 ${point.e2e.p99.toFixed(1)} ms` : '';
  const lost = point.unsent + point.timeouts + point.errors + point.non2xx;
  return (
    `offered ${point.offeredRate}/s → ${point.achievedRate.toFixed(0)}/s, ack p50 ${point.ack.p50.toFixed(1)} p99 ${point.ack.p99.toFixed(1)} ms${e2e}` +
    `${lost ? `, ${lost} not acknowledged` : ''}${point.undelivered ? `, ${point.undelivered} not delivered in time` : ''}`
  );
}
