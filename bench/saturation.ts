/**
 * Inbound acknowledgement at saturation (wrk, or autocannon without it; closed loop): the bridge and
 * three baselines (bare node:http, bare Express, node-webot/wechat), all started at once and measured
 * in alternating rounds (node:http, Express, node-webot, bridge, node:http, …), so that a burst of load from elsewhere on a shared machine lands on all of them
 * rather than on one. Between the bridge's rounds its queue is left to drain (everything it
 * acknowledged reaches the fake Vonage), so the baselines are never measured beside its backlog.
 */
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import * as os from 'node:os';
import { DeliveryLog, startBaseline, startBridge, VONAGE_APP_ID, type ClosedLoopRow } from './bridge';
import { closedLoopPushes } from './wrk';
import type { ChildProcesses, ServerProcess } from './processes';

export interface SaturationRound extends ClosedLoopRow {
  round: number;
  cpuPercent: number | undefined;
  loadAverage: number;
}

export interface SaturationResult {
  name: string;
  rounds: SaturationRound[];
  /** Means over the rounds. */
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  cpuPercent: number | undefined;
  /** VmHWM after all rounds (warm-up included), MiB. */
  peakRssMb: number | undefined;
}

export interface BridgeDelivery {
  /** Distinct messages of the measured rounds that reached the fake Vonage. */
  delivered: number;
  /** Per second, from the start of each round to its last delivery (mean over rounds). */
  deliveredPerS: number;
  /** Seconds after a round's load until its last delivery (mean). */
  drainS: number;
  duplicates: number;
  /** Every acknowledged message reached Vonage within the drain timeout. */
  complete: boolean;
  /** The bridge's CPU time per delivered message, from the start of a round to its last delivery (mean), µs. */
  cpuMicrosPerMessage: number | undefined;
}

export interface SaturationOptions {
  processes: ChildProcesses;
  names: { http: string; express: string; webot: string; bridge: string };
  rounds: number;
  durationS: number;
  warmUpS: number;
  connections: number;
  drainTimeoutMs?: number;
  log?: (line: string) => void;
}

interface Contender {
  key: 'http' | 'express' | 'webot' | 'bridge';
  name: string;
  server: ServerProcess;
  port: number;
  rounds: SaturationRound[];
}

/** A server's CPU time per answered request at saturation, µs (from its CPU share and rate). */
export function cpuMicrosPerRequest(result: { cpuPercent: number | undefined; rps: number }): number | undefined {
  return result.cpuPercent === undefined || result.rps <= 0 ? undefined : (result.cpuPercent / 100 / result.rps) * 1e6;
}

export async function saturation(options: SaturationOptions): Promise<{ http: SaturationResult; express: SaturationResult; webot: SaturationResult; bridge: SaturationResult; delivery: BridgeDelivery }> {
  const { processes, names, durationS, warmUpS, connections } = options;
  const drainTimeoutMs = options.drainTimeoutMs ?? 120_000;
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  const stops: Array<() => Promise<void>> = [];
  try {
    const http = await startBaseline(processes, names.http, 'bare-http');
    stops.push(() => http.server.stop());
    const express = await startBaseline(processes, names.express, 'bare-express');
    stops.push(() => express.server.stop());
    const webot = await startBaseline(processes, names.webot, 'node-webot');
    stops.push(() => webot.server.stop());
    const bridge = await startBridge({ processes, name: names.bridge, vonage });
    stops.push(() => bridge.stop());
    const deliveries = new DeliveryLog(vonage);
    const contenders: Contender[] = [
      { key: 'http', name: names.http, server: http.server, port: http.port, rounds: [] },
      { key: 'express', name: names.express, server: express.server, port: express.port, rounds: [] },
      { key: 'webot', name: names.webot, server: webot.server, port: webot.port, rounds: [] },
      { key: 'bridge', name: 'bridge: signed text → durable SQLite → success', server: bridge.server, port: bridge.port, rounds: [] },
    ];

    const drainBridge = async (acknowledged: number, what: string) => {
      const target = deliveries.delivered + acknowledged;
      const drained = await deliveries.waitForDelivered(target, drainTimeoutMs);
      deliveries.forgetUnmatched(); // autocannon's sends are not timed one by one
      if (!drained) {
        options.log?.(`  warning: the bridge delivered only ${deliveries.delivered - (target - acknowledged)} of ${acknowledged} ${what} to the fake Vonage within ${drainTimeoutMs / 1000} s`);
        return false;
      }
      return true;
    };

    // Warm-up (JIT, connection pools, SQLite's cache), not reported; the bridge's queue drained after it.
    for (const contender of contenders) {
      const warmUp = await closedLoopPushes(`${contender.name} (warm-up)`, contender.port, 0, warmUpS, connections);
      contender.server.assertAlive();
      if (contender.key === 'bridge') await drainBridge(warmUp.acknowledged, 'warm-up messages');
    }

    let delivered = 0;
    let complete = true;
    const deliveredPerS: number[] = [];
    const drainS: number[] = [];
    const cpuPerMessage: number[] = [];
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const contender of contenders) {
        const loadAverage = os.loadavg()[0]!;
        const cpuBefore = contender.server.cpuSeconds();
        const deliveredBefore = deliveries.delivered;
        const startedAt = Date.now();
        const row = await closedLoopPushes(contender.name, contender.port, round, durationS, connections);
        const endedAt = Date.now();
        const cpuAfter = contender.server.cpuSeconds();
        contender.server.assertAlive();
        const cpuPercent = cpuBefore === undefined || cpuAfter === undefined ? undefined : ((cpuAfter - cpuBefore) / ((endedAt - startedAt) / 1000)) * 100;
        contender.rounds.push({ ...row, round, cpuPercent, loadAverage });
        let detail = '';
        if (contender.key === 'bridge') {
          complete = (await drainBridge(row.acknowledged, 'acknowledged messages')) && complete;
          const roundDelivered = deliveries.delivered - deliveredBefore;
          delivered += roundDelivered;
          deliveredPerS.push(roundDelivered / Math.max(0.001, (deliveries.lastDeliveryAt - startedAt) / 1000));
          drainS.push(Math.max(0, (deliveries.lastDeliveryAt - endedAt) / 1000));
          const cpuDrained = contender.server.cpuSeconds();
          if (cpuBefore !== undefined && cpuDrained !== undefined && roundDelivered > 0) cpuPerMessage.push(((cpuDrained - cpuBefore) / roundDelivered) * 1e6);
          detail = `; delivered ${deliveredPerS[deliveredPerS.length - 1]!.toFixed(0)}/s, drained ${drainS[drainS.length - 1]!.toFixed(1)} s after the load, ${cpuPerMessage.length > 0 ? cpuPerMessage[cpuPerMessage.length - 1]!.toFixed(0) : '?'} µs of CPU per message`;
        }
        const cpuPerRequest = cpuMicrosPerRequest({ cpuPercent, rps: row.rps });
        if (contender.key !== 'bridge' && cpuPerRequest !== undefined) detail = `; ${cpuPerRequest.toFixed(0)} µs of CPU per request`;
        options.log?.(`  round ${round}, ${contender.name}: ${row.rps.toFixed(0)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms${detail}`);
      }
    }

    const summary = (contender: Contender): SaturationResult => {
      const rounds = contender.rounds;
      const mean = (pick: (round: SaturationRound) => number) => rounds.reduce((sum, round) => sum + pick(round), 0) / rounds.length;
      const cpu = rounds.every((round) => round.cpuPercent !== undefined) ? mean((round) => round.cpuPercent!) : undefined;
      return {
        name: contender.name,
        rounds,
        rps: mean((round) => round.rps),
        p50: mean((round) => round.p50),
        p99: mean((round) => round.p99),
        errors: rounds.reduce((sum, round) => sum + round.errors, 0),
        non2xx: rounds.reduce((sum, round) => sum + round.non2xx, 0),
        cpuPercent: cpu,
        peakRssMb: contender.server.memory()?.peakRssMb,
      };
    };
    const meanOf = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
    return {
      http: summary(contenders[0]!),
      express: summary(contenders[1]!),
      webot: summary(contenders[2]!),
      bridge: summary(contenders[3]!),
      delivery: {
        delivered,
        deliveredPerS: meanOf(deliveredPerS),
        drainS: meanOf(drainS),
        duplicates: deliveries.duplicates,
        complete,
        cpuMicrosPerMessage: cpuPerMessage.length > 0 ? meanOf(cpuPerMessage) : undefined,
      },
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await vonage.close();
  }
}
