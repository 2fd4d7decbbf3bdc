/**
 * Soak: sustained mixed traffic on one bridge process for several minutes, its resident memory
 * sampled every second.
 *
 * Signed plain-text pushes (inbound, delivered to a fake Vonage) and signed outbound RTC events
 * (relayed to a fake WeChat that answers at once) are paced at fixed rates well below what the
 * bridge can take, on the same bridge (durable SQLite). The first half of the run is warm-up (JIT,
 * heap sizing, SQLite's page cache); the trend is the least-squares slope of RSS over the second
 * half. A leak of 100 bytes per message at the default 250 messages/s would be 1.5 MB/min.
 *
 * RSS also grows while V8 lets garbage pile up before a full collection, so after the series the
 * bridge is made to write a heap snapshot (bench/heap.ts): the reachable JS heap it reports tells a
 * leak of live objects from memory merely not reclaimed yet. (Not RSS after it: writing a snapshot
 * takes tens of MB of its own.)
 */
import { startFakeVonage } from '../test/support/fake-vonage';
import { startFakeWeChat } from '../test/support/fake-wechat';
import { testKeyPair } from '../test/support/keys';
import { DeliveryLog, pacedPush, startBridge, VONAGE_APP_ID, WECHAT_APP_ID, WECHAT_APP_SECRET } from './bridge';
import { outboundEventRequest } from './outbound';
import { runPaced, type PacedResult } from './paced';
import { heapSnapshots } from './heap';
import { bridgeNodeArgs, type ChildProcesses } from './processes';
import { leastSquaresSlope, summarise, type Summary } from './stats';

/** Below this RSS slope (MB/min, second half) the soak reports "no growth trend". */
export const SOAK_SLOPE_LIMIT_MB_PER_MIN = 1;

export interface SoakOptions {
  processes: ChildProcesses;
  durationS: number;
  inboundRate: number;
  outboundRate: number;
  connections: number;
  log?: (line: string) => void;
}

export interface SoakResult {
  durationS: number;
  inboundRate: number;
  outboundRate: number;
  inbound: PacedSummary;
  outbound: PacedSummary;
  /** Push sent → event at the fake Vonage, ms. */
  e2e: Summary;
  delivered: number;
  duplicates: number;
  relayed: number;
  tokenFetches: number;
  /** RSS every second: seconds since the start, MiB. */
  samples: Array<{ t: number; rssMb: number }>;
  startRssMb: number;
  endRssMb: number;
  peakRssMb: number;
  /** Least-squares slope over the second half, MB/min. */
  slopeMbPerMin: number;
  noGrowthTrend: boolean;
  /** The bridge's CPU use over the run, % of one core. */
  cpuPercent: number | undefined;
  /** Reachable JS heap after the soak, after a full GC (heap snapshot), MiB. */
  liveHeapMb: number | undefined;
}

export interface PacedSummary {
  ok: number;
  notAcknowledged: number;
  ack: Summary;
}

export async function soak(options: SoakOptions): Promise<SoakResult> {
  const { processes, durationS, inboundRate, outboundRate, connections } = options;
  const weChat = await startFakeWeChat({ appId: WECHAT_APP_ID, appSecret: WECHAT_APP_SECRET });
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  const heap = heapSnapshots();
  try {
    const bridge = await startBridge({
      processes,
      name: 'bridge (soak)',
      vonage,
      weChatBaseUrl: weChat.baseUrl,
      signed: true,
      nodeArgs: [...bridgeNodeArgs(), ...heap.nodeArgs],
    });
    try {
      const deliveries = new DeliveryLog(vonage);
      const samples: Array<{ t: number; rssMb: number }> = [];
      const startedAt = Date.now();
      const cpuBefore = bridge.server.cpuSeconds();
      // The emulators' lists of what they received are emptied as they are read: a long soak must
      // not pile them up in this process.
      let relayedEarlier = 0;
      const relayed = () => relayedEarlier + weChat.sent.length;
      const sample = () => {
        const memory = bridge.server.memory();
        if (memory) samples.push({ t: (Date.now() - startedAt) / 1000, rssMb: memory.rssMb });
        deliveries.collect();
        relayedEarlier += weChat.sent.splice(0).length;
        if (memory && samples.length % 60 === 0) {
          options.log?.(`  soak: ${samples.length} s, RSS ${memory.rssMb.toFixed(0)} MB, ${deliveries.delivered} delivered, ${relayed()} relayed`);
        }
      };
      sample();
      const sampler = setInterval(sample, 1000);
      let inbound: PacedResult;
      let outbound: PacedResult;
      const ids = new Map<number, string>();
      try {
        [inbound, outbound] = await Promise.all([
          runPaced({
            port: bridge.port,
            rate: inboundRate,
            durationS,
            connections,
            request: (seq) => {
              const push = pacedPush(0, seq);
              ids.set(seq, push.msgId);
              return push;
            },
            onAnswer: (seq, status, _latency, sentAtMs) => {
              if (status >= 200 && status < 300) deliveries.noteSent(ids.get(seq)!, sentAtMs);
              ids.delete(seq);
            },
          }),
          runPaced({
            port: bridge.port,
            rate: outboundRate,
            durationS,
            connections,
            request: (seq) => ({ path: '/rtcEvent', ...outboundEventRequest(seq + 1, true) }),
          }),
        ]);
      } finally {
        clearInterval(sampler);
      }
      const cpuAfter = bridge.server.cpuSeconds();
      const cpuPercent =
        cpuBefore === undefined || cpuAfter === undefined ? undefined : ((cpuAfter - cpuBefore) / ((Date.now() - startedAt) / 1000)) * 100;
      bridge.server.assertAlive();
      const memory = bridge.server.memory();
      await deliveries.waitForDelivered(inbound.ok, 30_000);
      const drainDeadline = Date.now() + 30_000;
      while (relayed() < outbound.ok && Date.now() < drainDeadline) await new Promise((resolve) => setTimeout(resolve, 20));

      // After the series: a heap snapshot (a full GC first) says how much of the RSS is reachable JS
      // heap. Taken earlier it would distort the series: writing one leaves the process with tens of
      // MB more resident memory.
      let endMb: number | undefined;
      try {
        endMb = await heap.take(bridge.server.pid);
      } catch (error) {
        options.log?.(`  soak: no final heap snapshot (${(error as Error).message})`);
      }

      const secondHalf = samples.filter((s) => s.t >= durationS / 2).map((s) => ({ x: s.t / 60, y: s.rssMb }));
      const slopeMbPerMin = leastSquaresSlope(secondHalf);
      return {
        durationS,
        inboundRate,
        outboundRate,
        inbound: pacedSummary(inbound),
        outbound: pacedSummary(outbound),
        e2e: summarise(deliveries.takeLatencies()),
        delivered: deliveries.delivered,
        duplicates: deliveries.duplicates,
        relayed: relayed(),
        tokenFetches: weChat.tokenFetches,
        samples,
        startRssMb: samples[0]?.rssMb ?? Number.NaN,
        endRssMb: samples[samples.length - 1]?.rssMb ?? Number.NaN,
        peakRssMb: Math.max(...samples.map((s) => s.rssMb), memory?.rssMb ?? 0),
        slopeMbPerMin,
        noGrowthTrend: Number.isFinite(slopeMbPerMin) && slopeMbPerMin < SOAK_SLOPE_LIMIT_MB_PER_MIN,
        cpuPercent,
        liveHeapMb: endMb,
      };
    } finally {
      await bridge.stop();
    }
  } finally {
    heap.dispose();
    await weChat.close();
    await vonage.close();
  }
}

function pacedSummary(result: PacedResult): PacedSummary {
  return {
    ok: result.ok,
    notAcknowledged: result.non2xx + result.errors + result.timeouts + result.unsent,
    ack: summarise(result.latenciesMs),
  };
}
