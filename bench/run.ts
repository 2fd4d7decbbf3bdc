/**
 * `npm run bench`: the bridge's figures, each beside a baseline measured in the same run on the same
 * machine (a bare node:http server and a bare Express 5 route, both answering `success`, and
 * node-webot/wechat 2.1.0, which checks the signature and parses the XML, then answers `success`).
 * With `taskset` and two cores or more, every server runs on the last core and the load generators
 * on the others (BENCH_PIN=0 to leave scheduling to the OS).
 *
 * 1. saturation (wrk with one thread, or autocannon without wrk; BENCH_CONNECTIONS connections,
 *    BENCH_DURATION s): inbound acknowledgement rate, p50/p99, peak RSS, and how fast the
 *    acknowledged messages then reach Vonage; then a burst of BENCH_BURST_CONNECTIONS connections
 *    (share of answers later than WeChat's 5 s);
 * 2. latency: a fixed moderate paced rate (ack latency; end-to-end WeChat push → Vonage event for
 *    the bridge), then a sweep of increasing offered rates → bench/results/latency-under-load.svg;
 * 3. outbound relay (RTC event → WeChat custom/send) and token fetches per 10,000 sends;
 * 4. PostgreSQL, one and three instances (BENCH_SKIP_POSTGRES=1 to leave out);
 * 5. a soak: mixed paced traffic for BENCH_SOAK_SECONDS, RSS every second → soak-memory.svg;
 * 6. a backlog: BENCH_BACKLOG (100,000) jobs waiting while Vonage is down, beside an empty queue
 *    (ack rate and p99), then how fast the backlog drains when Vonage is back (BENCH_BACKLOG=0 skips it).
 *
 * Prints one Markdown document (the summary table, then the raw rows) on stdout and writes it to
 * bench/results/latest.md; progress goes to stderr. Every server is a child process on this Node;
 * the load generators and the fake Vonage / WeChat run here. Every child is killed at the end,
 * whatever happens (including Ctrl-C).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { DeliveryLog, PACED_USERS, ROOT, startBaseline, startBridge, VONAGE_APP_ID } from './bridge';
import { benchOutbound, type OutboundBenchResult } from './outbound';
import { benchPostgres, type PostgresBenchRow } from './postgres';
import { benchBurst, type BurstResult } from './burst';
import { benchBacklog, type BacklogResult } from './backlog';
import { ChildProcesses, pinBenchProcess } from './processes';
import { hasWrk } from './wrk';
import { cpuMicrosPerRequest, saturation } from './saturation';
import { numberSetting, SERVER_NAMES } from './settings';
import { soak, SOAK_SLOPE_LIMIT_MB_PER_MIN, type SoakResult } from './soak';
import { leastSquaresLine } from './stats';
import { lineChartSvg, type Series } from './svg';
import { sweep, type LoadPoint } from './sweep';

// --- settings ------------------------------------------------------------------------------------------

interface Settings {
  durationS: number;
  rounds: number;
  connections: number;
  warmUpS: number;
  fixedRate: number;
  rates: number[];
  stepS: number;
  soakS: number;
  soakInboundRate: number;
  soakOutboundRate: number;
  skipPostgres: boolean;
  nodeArgs: string;
  burstConnections: number;
  burstS: number;
  backlog: number;
}

const DEFAULT_SOAK_S = 180;
const ACK_P99_TARGET_MS = 25;
/** Acknowledged and delivered, as a multiple of node-webot's acknowledge-only rate. */
const RATE_TARGET = 1.0;
const OUTBOUND_RATE_TARGET = 0.5;
const RSS_TARGET_MB = 150;
/** With a backlog, the ack rate and p99 stay within this share of the empty queue's. */
const BACKLOG_TOLERANCE = 0.1;

function readSettings(): Settings {
  return {
    durationS: numberSetting('BENCH_DURATION', 10, 1),
    rounds: numberSetting('BENCH_ROUNDS', 2, 1),
    connections: numberSetting('BENCH_CONNECTIONS', 50, 1),
    warmUpS: 3,
    fixedRate: numberSetting('BENCH_E2E_RATE', 500, 1),
    rates: [250, 500, 1000, 2000, 4000, 8000],
    stepS: numberSetting('BENCH_STEP_SECONDS', 4, 1),
    soakS: numberSetting('BENCH_SOAK_SECONDS', DEFAULT_SOAK_S, 10),
    soakInboundRate: 200,
    soakOutboundRate: 50,
    skipPostgres: process.env.BENCH_SKIP_POSTGRES === '1',
    nodeArgs: process.env.BENCH_NODE_ARGS ?? '',
    burstConnections: numberSetting('BENCH_BURST_CONNECTIONS', 2000, 1),
    burstS: numberSetting('BENCH_BURST_SECONDS', 5, 1),
    backlog: numberSetting('BENCH_BACKLOG', 100_000, 0),
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

// --- measurements --------------------------------------------------------------------------------------

interface Results {
  settings: Settings;
  startedAt: Date;
  loadBefore: number[];
  loadAfter: number[];
  saturation: Awaited<ReturnType<typeof saturation>>;
  burst: BurstResult;
  pinned: boolean;
  loadGenerator: 'wrk' | 'autocannon';
  sweeps: { http: LoadPoint[]; express: LoadPoint[]; bridge: LoadPoint[] };
  sweepLoadAverage: number;
  outbound: OutboundBenchResult;
  outboundLoadAverage: number;
  postgres: PostgresBenchRow[] | undefined;
  postgresLoadAverage: number | undefined;
  soak: SoakResult;
  soakLoadAverage: number;
  backlog: BacklogResult | undefined;
  backlogLoadAverage: number | undefined;
  elapsedS: number;
}


async function measureAll(processes: ChildProcesses, settings: Settings): Promise<Results> {
  const startedAt = new Date();
  const loadBefore = os.loadavg();

  const loadGenerator = hasWrk() ? 'wrk' : 'autocannon';
  progress(
    `1/6 saturation: ${loadGenerator}, ${settings.connections} connections${processes.pinned ? ', servers pinned to one core' : ''}, ${settings.warmUpS} s warm-up, then ${settings.rounds} alternating rounds of ${settings.durationS} s per server`,
  );
  const saturated = await saturation({
    processes,
    names: SERVER_NAMES,
    rounds: settings.rounds,
    durationS: settings.durationS,
    warmUpS: settings.warmUpS,
    connections: settings.connections,
    log: progress,
  });
  progress(`  burst: ${settings.burstConnections} connections for ${settings.burstS} s on the bridge`);
  const burst = await benchBurst({ processes, connections: settings.burstConnections, durationS: settings.burstS });
  progress(
    `  burst: ${burst.acknowledged} acknowledged, ${burst.shed} answered 503, ${burst.errors} errors, p99 ${burst.p99.toFixed(0)} ms, max ${burst.max.toFixed(0)} ms, ` +
      `over 5 s ${burst.over5sShare === undefined ? 'unknown' : `${(burst.over5sShare * 100).toFixed(2)} %`}; delivered ${burst.complete ? 'all' : 'NOT all'}`,
  );

  progress(
    `2/6 latency: paced (open loop, ≤ ${settings.connections} connections), ${settings.fixedRate}/s for ${settings.durationS} s, then ${settings.rates.join(', ')}/s for ${settings.stepS} s each`,
  );
  const sweepLoadAverage = os.loadavg()[0]!;
  const sweepOptions = {
    connections: settings.connections,
    warmUp: { rate: 1000, seconds: settings.warmUpS },
    fixedRate: settings.fixedRate,
    fixedS: settings.durationS,
    rates: settings.rates,
    stepS: settings.stepS,
    log: progress,
  };
  const sweepBaseline = async (key: 'http' | 'express') => {
    const { server, port } = await startBaseline(processes, SERVER_NAMES[key], key === 'http' ? 'bare-http' : 'bare-express');
    try {
      return await sweep({ ...sweepOptions, name: SERVER_NAMES[key], server, port });
    } finally {
      await server.stop();
    }
  };
  const sweepHttp = await sweepBaseline('http');
  const sweepExpress = await sweepBaseline('express');
  const sweepBridge = await withFakeVonage(async (vonage) => {
    const running = await startBridge({ processes, name: SERVER_NAMES.bridge, vonage });
    try {
      return await sweep({ ...sweepOptions, name: SERVER_NAMES.bridge, server: running.server, port: running.port, deliveries: new DeliveryLog(vonage) });
    } finally {
      await running.stop();
    }
  });

  progress(`3/6 outbound relay: autocannon, ${settings.connections} connections, ${settings.durationS} s, then until the queue drains`);
  const outboundLoadAverage = os.loadavg()[0]!;
  const outbound = await benchOutbound({ processes, durationS: settings.durationS, connections: settings.connections });
  progress(`  ${outbound.rps.toFixed(0)} relayed/s, ${outbound.cpuMicrosPerMessage?.toFixed(0) ?? '?'} µs of CPU per message, ${outbound.tokenFetches} token fetch(es) for ${outbound.sends} sends`);

  let postgres: PostgresBenchRow[] | undefined;
  let postgresLoadAverage: number | undefined;
  if (settings.skipPostgres) {
    progress('4/6 PostgreSQL: skipped (BENCH_SKIP_POSTGRES=1)');
  } else {
    progress(`4/6 PostgreSQL: 1 and 3 instances, beside 1 on SQLite measured just before, autocannon as in 1/5`);
    postgresLoadAverage = os.loadavg()[0]!;
    try {
      postgres = await benchPostgres({ processes, durationS: settings.durationS, connections: settings.connections, warmUpS: settings.warmUpS, withSqlite: true });
    } catch (error) {
      throw new Error(`the PostgreSQL rows failed (set BENCH_SKIP_POSTGRES=1 on a machine without PostgreSQL): ${(error as Error).message}`, { cause: error });
    }
    for (const row of postgres) progress(`  ${row.name}: ${row.rps.toFixed(0)} req/s, p99 ${row.p99} ms`);
  }

  progress(
    `5/6 soak: ${settings.soakInboundRate} pushes/s + ${settings.soakOutboundRate} outbound events/s for ${settings.soakS} s` +
      (settings.soakS < DEFAULT_SOAK_S ? ` (shortened from ${DEFAULT_SOAK_S} s by BENCH_SOAK_SECONDS)` : ''),
  );
  const soakLoadAverage = os.loadavg()[0]!;
  const soakResult = await soak({
    processes,
    durationS: settings.soakS,
    inboundRate: settings.soakInboundRate,
    outboundRate: settings.soakOutboundRate,
    connections: settings.connections,
    log: progress,
  });
  progress(`  RSS ${soakResult.startRssMb.toFixed(0)} → ${soakResult.endRssMb.toFixed(0)} MB, slope ${soakResult.slopeMbPerMin.toFixed(2)} MB/min over the second half`);

  let backlog: BacklogResult | undefined;
  let backlogLoadAverage: number | undefined;
  if (settings.backlog === 0) {
    progress('6/6 backlog: skipped (BENCH_BACKLOG=0)');
  } else {
    progress(`6/6 backlog: ${settings.backlog} jobs waiting while Vonage is down, beside an empty queue, ${settings.rounds} alternating rounds of ${settings.durationS} s; then Vonage is back`);
    backlogLoadAverage = os.loadavg()[0]!;
    backlog = await benchBacklog({
      processes,
      backlog: settings.backlog,
      rounds: settings.rounds,
      durationS: settings.durationS,
      warmUpS: settings.warmUpS,
      connections: settings.connections,
      log: progress,
    });
  }

  return {
    settings,
    startedAt,
    loadBefore,
    loadAfter: os.loadavg(),
    saturation: saturated,
    burst,
    pinned: processes.pinned,
    loadGenerator,
    sweeps: { http: sweepHttp, express: sweepExpress, bridge: sweepBridge },
    sweepLoadAverage,
    outbound,
    outboundLoadAverage,
    postgres,
    postgresLoadAverage,
    soak: soakResult,
    soakLoadAverage,
    backlog,
    backlogLoadAverage,
    elapsedS: (Date.now() - startedAt.getTime()) / 1000,
  };
}

function backlogSection(b: BacklogResult, s: Settings, loadAverage: number | undefined): string[] {
  const side = (x: BacklogResult['empty']) => [
    x.name,
    x.rounds.map((row) => fixed(row.rps)).join(' / '),
    x.rounds.map((row) => fixed(row.p99, 1)).join(' / '),
    String(x.rounds.reduce((sum, row) => sum + row.non2xx + row.errors, 0)),
    String(x.waiting),
    fixed(x.drainPerS),
    fixed(x.drainS, 1),
    x.drained ? 'yes' : `**no** (${x.duplicates} duplicates)`,
    fixed(x.peakRssMb),
  ];
  return [
    `**Backlog** (${b.backlog} jobs from 10,000 users written into one bridge's SQLite file before it starts, in ${fixed(b.fillS, 1)} s, due in an hour as after an outage; ` +
      `the other bridge starts on an empty queue. Both warm up with Vonage up; then both fake Vonages answer \`503\` with \`Retry-After: 3600\` and the two bridges take ${s.rounds} alternating rounds of ${s.durationS} s of wrk, ${s.connections} connections. ` +
      `Then Vonage is back: every waiting job is made due and the drain is timed to the last delivery).${loadAverage === undefined ? '' : ` Load average at start: ${loadAverage.toFixed(2)}.`}`,
    '',
    markdownTable(['bridge', 'ack req/s per round', 'ack p99 ms per round', 'non-2xx + errors', 'jobs waiting when Vonage came back', 'drained msg/s', 'drain s', 'all delivered once', 'peak RSS MB'], [side(b.empty), side(b.withBacklog)]),
    '',
  ];
}

async function withFakeVonage<T>(use: (vonage: Awaited<ReturnType<typeof startFakeVonage>>) => Promise<T>): Promise<T> {
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  try {
    return await use(vonage);
  } finally {
    await vonage.close();
  }
}

// --- the report ----------------------------------------------------------------------------------------

const fixed = (value: number | undefined, digits = 0) => (value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits));
const ratio = (value: number | undefined, base: number | undefined) =>
  value === undefined || base === undefined || !Number.isFinite(value) || !Number.isFinite(base) || base === 0 ? '—' : `${(value / base).toFixed(2)}×`;
const verdict = (met: boolean | undefined) => (met === undefined ? '—' : met ? '**yes**' : '**no**');

function fixedPoint(points: LoadPoint[]): LoadPoint {
  return points.find((p) => p.phase === 'fixed')!;
}

/** The highest swept rate served with ≥ 99 % acknowledged and ack p99 under the target. */
function sustainableRate(points: LoadPoint[]): number | undefined {
  const good = points
    .filter((p) => p.phase === 'step')
    .filter((p) => p.achievedRate >= 0.99 * p.offeredRate && p.ack.p99 < ACK_P99_TARGET_MS && p.non2xx + p.errors + p.timeouts + p.unsent === 0);
  return good.length ? Math.max(...good.map((p) => p.offeredRate)) : undefined;
}

function report(r: Results): { markdown: string; latencySvg: string; memorySvg: string } {
  const s = r.settings;
  const { http, express, webot, bridge, delivery } = r.saturation;
  const burst = r.burst;
  /** Acknowledged and delivered: the lower of the ack rate and the delivery rate, and only if all got through. */
  const ackedAndDelivered = delivery.complete ? Math.min(bridge.rps, delivery.deliveredPerS) : 0;
  const fixedHttp = fixedPoint(r.sweeps.http);
  const fixedExpress = fixedPoint(r.sweeps.express);
  const fixedBridge = fixedPoint(r.sweeps.bridge);
  const pgSqlite = r.postgres?.find((row) => row.database === 'sqlite');
  const pg1 = r.postgres?.find((row) => row.database === 'postgres' && row.instances === 1);
  const pg3 = r.postgres?.find((row) => row.database === 'postgres' && row.instances === 3);
  const tokenFetchesAllowed = Math.max(1, Math.ceil(r.outbound.sends / 10_000));
  const soakResult = r.soak;
  const sustainable = {
    http: sustainableRate(r.sweeps.http),
    express: sustainableRate(r.sweeps.express),
    bridge: sustainableRate(r.sweeps.bridge),
  };
  const load = (values: number[]) => values.map((v) => v.toFixed(2)).join(' / ');
  const cpu = os.cpus();

  const rows: string[][] = [
    [
      `inbound acknowledged and delivered, msg/s (${r.loadGenerator}, signed text, durable SQLite)`,
      fixed(ackedAndDelivered),
      'node-webot/wechat (acknowledge only)',
      fixed(webot.rps),
      ratio(ackedAndDelivered, webot.rps),
      `≥ ${RATE_TARGET}× node-webot, all delivered`,
      verdict(delivery.complete && ackedAndDelivered >= RATE_TARGET * webot.rps),
    ],
    [
      'CPU per inbound message, µs (the bridge: stored, acknowledged and delivered)',
      fixed(delivery.cpuMicrosPerMessage),
      'node-webot/wechat, CPU per request (acknowledge only)',
      fixed(cpuMicrosPerRequest(webot)),
      ratio(delivery.cpuMicrosPerMessage, cpuMicrosPerRequest(webot)),
      '',
      '',
    ],
    ['inbound ack rate, req/s', fixed(bridge.rps), 'node-webot/wechat', fixed(webot.rps), ratio(bridge.rps, webot.rps), '', ''],
    ['inbound ack rate, req/s', fixed(bridge.rps), 'bare Express 5', fixed(express.rps), ratio(bridge.rps, express.rps), '', ''],
    ['node-webot/wechat ack rate, req/s', fixed(webot.rps), 'bare Express 5', fixed(express.rps), ratio(webot.rps, express.rps), '', ''],
    ['inbound ack rate, req/s', fixed(bridge.rps), 'bare node:http', fixed(http.rps), ratio(bridge.rps, http.rps), '', ''],
    [`inbound ack p99, ms (${s.connections} connections)`, fixed(bridge.p99, 1), 'bare Express 5', fixed(express.p99, 1), ratio(bridge.p99, express.p99), `< ${ACK_P99_TARGET_MS} ms`, verdict(bridge.p99 < ACK_P99_TARGET_MS)],
    [`inbound ack p99, ms (${s.connections} connections)`, fixed(bridge.p99, 1), 'bare node:http', fixed(http.p99, 1), ratio(bridge.p99, http.p99), '', ''],
    ['peak RSS during the inbound runs, MB', fixed(bridge.peakRssMb), 'bare Express 5', fixed(express.peakRssMb), ratio(bridge.peakRssMb, express.peakRssMb), `< ${RSS_TARGET_MB} MB`, verdict(bridge.peakRssMb === undefined ? undefined : bridge.peakRssMb < RSS_TARGET_MB)],
    ['peak RSS during the inbound runs, MB', fixed(bridge.peakRssMb), 'node-webot/wechat', fixed(webot.peakRssMb), ratio(bridge.peakRssMb, webot.peakRssMb), '', ''],
    [
      `burst: answers later than 5 s, ${burst.connections} connections for ${burst.durationS} s (${burst.loadGenerator})`,
      burst.over5sShare === undefined ? 'unknown' : `${(burst.over5sShare * 100).toFixed(2)} %`,
      `${burst.acknowledged} acknowledged, ${burst.shed} answered 503 (shed), ${burst.errors} socket errors; p99 ${fixed(burst.p99)} ms, max ${fixed(burst.max)} ms`,
      '',
      '',
      '0 %, every acknowledged message delivered',
      verdict(burst.over5sShare === undefined ? undefined : burst.over5sShare === 0 && burst.complete),
    ],
    [`end-to-end delivery p50, ms (push → Vonage event, ${s.fixedRate}/s paced)`, fixed(fixedBridge.e2e?.p50, 1), `bare Express 5 ack p50 at ${s.fixedRate}/s`, fixed(fixedExpress.ack.p50, 2), ratio(fixedBridge.e2e?.p50, fixedExpress.ack.p50), '', ''],
    [`end-to-end delivery p99, ms (push → Vonage event, ${s.fixedRate}/s paced)`, fixed(fixedBridge.e2e?.p99, 1), `bare Express 5 ack p99 at ${s.fixedRate}/s`, fixed(fixedExpress.ack.p99, 2), ratio(fixedBridge.e2e?.p99, fixedExpress.ack.p99), '', ''],
    [`end-to-end delivery p99, ms (${s.fixedRate}/s paced)`, fixed(fixedBridge.e2e?.p99, 1), `bare node:http ack p99 at ${s.fixedRate}/s`, fixed(fixedHttp.ack.p99, 2), ratio(fixedBridge.e2e?.p99, fixedHttp.ack.p99), '', ''],
    [`inbound ack p99, ms (${s.fixedRate}/s paced)`, fixed(fixedBridge.ack.p99, 1), `bare Express 5 at ${s.fixedRate}/s`, fixed(fixedExpress.ack.p99, 2), ratio(fixedBridge.ack.p99, fixedExpress.ack.p99), `< ${ACK_P99_TARGET_MS} ms`, verdict(fixedBridge.ack.p99 < ACK_P99_TARGET_MS)],
    [`highest swept rate with ack p99 < ${ACK_P99_TARGET_MS} ms, all acknowledged, req/s`, fixed(sustainable.bridge), 'bare Express 5', fixed(sustainable.express), ratio(sustainable.bridge, sustainable.express), '', ''],
    ['inbound delivered to Vonage at saturation, msg/s', fixed(delivery.deliveredPerS), 'the bridge’s own ack rate (row 1)', fixed(bridge.rps), ratio(delivery.deliveredPerS, bridge.rps), '', ''],
    [
      'outbound relay rate, msg/s (RTC event → WeChat custom/send, drained)',
      fixed(r.outbound.rps),
      'bare Express 5 ack rate',
      fixed(express.rps),
      ratio(r.outbound.rps, express.rps),
      `≥ ${OUTBOUND_RATE_TARGET}× bare Express`,
      verdict(r.outbound.drained && r.outbound.rps >= OUTBOUND_RATE_TARGET * express.rps),
    ],
    [
      'CPU per relayed message, µs (the bridge: acknowledged, stored, sent to WeChat, status to Vonage)',
      fixed(r.outbound.cpuMicrosPerMessage),
      'bare Express 5, CPU per request',
      fixed(cpuMicrosPerRequest(express)),
      ratio(r.outbound.cpuMicrosPerMessage, cpuMicrosPerRequest(express)),
      '',
      '',
    ],
    ['token fetches per 10,000 sends', fixed(r.outbound.tokenFetchesPer10k, 1), `${r.outbound.tokenFetches} fetch(es) for ${r.outbound.sends} sends`, '', '', '1 (≤ 1 per started 10,000)', verdict(r.outbound.tokenFetches <= tokenFetchesAllowed)],
  ];
  if (pgSqlite && pg1 && pg3) {
    rows.push(
      ['inbound ack rate, req/s, PostgreSQL ×1', fixed(pg1.rps), 'bridge ×1 on SQLite, measured just before', fixed(pgSqlite.rps), ratio(pg1.rps, pgSqlite.rps), '', ''],
      ['inbound ack rate, req/s, PostgreSQL ×3 (round robin)', fixed(pg3.rps), 'bridge ×1 on SQLite, measured just before', fixed(pgSqlite.rps), ratio(pg3.rps, pgSqlite.rps), '', ''],
      ['inbound ack rate, req/s, PostgreSQL ×3 (round robin)', fixed(pg3.rps), 'bridge ×1 on PostgreSQL', fixed(pg1.rps), ratio(pg3.rps, pg1.rps), '', ''],
      ['inbound ack p99, ms, PostgreSQL ×1 / ×3', `${fixed(pg1.p99, 1)} / ${fixed(pg3.p99, 1)}`, 'bridge ×1 on SQLite, measured just before', fixed(pgSqlite.p99, 1), `${ratio(pg1.p99, pgSqlite.p99)} / ${ratio(pg3.p99, pgSqlite.p99)}`, '', ''],
    );
  } else {
    rows.push(['inbound ack rate, PostgreSQL ×1 / ×3', 'skipped', 'BENCH_SKIP_POSTGRES=1', '', '', '', '']);
  }
  rows.push(
    [`soak RSS slope, MB/min (second half of ${soakResult.durationS} s)`, fixed(soakResult.slopeMbPerMin, 2), `start ${fixed(soakResult.startRssMb)} MB → end ${fixed(soakResult.endRssMb)} MB`, '', '', `< ${SOAK_SLOPE_LIMIT_MB_PER_MIN} MB/min`, soakResult.noGrowthTrend ? '**yes: no growth trend**' : '**no: RSS grows**'],
    [
      'soak: live JS heap after the soak (full GC), MB',
      fixed(soakResult.liveHeapMb, 1),
      'RSS at the end of the soak',
      fixed(soakResult.endRssMb),
      ratio(soakResult.liveHeapMb, soakResult.endRssMb),
      '',
      '',
    ],
  );

  const b = r.backlog;
  if (b) {
    const within = (value: number, base: number) => Math.abs(value - base) <= BACKLOG_TOLERANCE * base;
    rows.push(
      [`inbound ack rate with ${b.backlog} jobs waiting (Vonage down), req/s`, fixed(b.withBacklog.rps), 'the same with an empty queue, alternating rounds', fixed(b.empty.rps), ratio(b.withBacklog.rps, b.empty.rps), `within ${BACKLOG_TOLERANCE * 100} %`, verdict(within(b.withBacklog.rps, b.empty.rps) || b.withBacklog.rps > b.empty.rps)],
      [`inbound ack p99 with ${b.backlog} jobs waiting (Vonage down), ms`, fixed(b.withBacklog.p99, 1), 'the same with an empty queue', fixed(b.empty.p99, 1), ratio(b.withBacklog.p99, b.empty.p99), `within ${BACKLOG_TOLERANCE * 100} %`, verdict(within(b.withBacklog.p99, b.empty.p99) || b.withBacklog.p99 < b.empty.p99)],
      [`backlog drain when Vonage is back, msg/s (${b.withBacklog.waiting} jobs)`, fixed(b.withBacklog.drainPerS), 'inbound delivered to Vonage at saturation', fixed(delivery.deliveredPerS), ratio(b.withBacklog.drainPerS, delivery.deliveredPerS), '≥ 1.0×, all delivered once', verdict(b.withBacklog.drained && b.withBacklog.drainPerS >= delivery.deliveredPerS)],
    );
  } else {
    rows.push(['ack rate and p99 with a backlog', 'skipped', 'BENCH_BACKLOG=0', '', '', '', '']);
  }

  const table = markdownTable(['figure', 'bridge', 'baseline (same run)', 'baseline value', 'bridge ÷ baseline', 'target', 'met'], rows, ['l', 'r', 'l', 'r', 'r', 'l', 'l']);

  const closedLoop = markdownTable(
    ['server', 'round', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'CPU % of a core', 'load avg (1 min) at start'],
    [http, express, webot, bridge].flatMap((server) => [
      ...server.rounds.map((round) => [server.name, String(round.round), fixed(round.rps), fixed(round.p50, 1), fixed(round.p99, 1), String(round.errors), String(round.non2xx), fixed(round.cpuPercent), fixed(round.loadAverage, 2)]),
      [`**${server.name}**`, '**mean**', `**${fixed(server.rps)}**`, `**${fixed(server.p50, 1)}**`, `**${fixed(server.p99, 1)}**`, String(server.errors), String(server.non2xx), fixed(server.cpuPercent), `peak RSS ${fixed(server.peakRssMb)} MB`],
    ]),
  );
  const paced = markdownTable(
    ['server', 'phase', 'offered/s', 'achieved/s', 'ack p50 ms', 'ack p99 ms', 'e2e p50 ms', 'e2e p99 ms', 'not acknowledged', 'not delivered in time', 'server CPU %', 'bench CPU %', 'load avg'],
    [...r.sweeps.http, ...r.sweeps.express, ...r.sweeps.bridge].map((p) => [
      p.server,
      p.phase === 'fixed' ? `fixed ${s.durationS} s` : `step ${s.stepS} s`,
      String(p.offeredRate),
      fixed(p.achievedRate),
      fixed(p.ack.p50, 2),
      fixed(p.ack.p99, 2),
      p.e2e ? fixed(p.e2e.p50, 1) : '',
      p.e2e ? fixed(p.e2e.p99, 1) : '',
      String(p.unsent + p.timeouts + p.errors + p.non2xx),
      p.e2e ? String(p.undelivered) : '',
      fixed(p.cpuPercent),
      fixed(p.benchCpuPercent),
      fixed(p.loadAverage, 2),
    ]),
  );
  const o = r.outbound;
  const outboundTable = markdownTable(
    ['path', 'relayed/s', 'acknowledged', 'sent to WeChat', 'ack p50 ms', 'ack p99 ms', 'errors', 'non-2xx', 'token fetches', 'per 10,000 sends', 'peak RSS MB'],
    [[o.name, fixed(o.rps), String(o.acknowledged), String(o.sends), fixed(o.p50, 1), fixed(o.p99, 1), String(o.errors), String(o.non2xx), String(o.tokenFetches), fixed(o.tokenFetchesPer10k, 1), fixed(o.memory?.peakRssMb)]],
  );
  const postgresTable = r.postgres
    ? markdownTable(
        ['server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'peak RSS MB (busiest instance)'],
        [
          ...r.postgres.map((row) => [row.name, fixed(row.rps), fixed(row.p50, 1), fixed(row.p99, 1), String(row.errors), String(row.non2xx), fixed(row.peakRssMb)]),
        ],
      )
    : '_Skipped (BENCH_SKIP_POSTGRES=1)._';
  const soakSeries = soakResult.samples.filter((_, index) => index % 15 === 0 || index === soakResult.samples.length - 1);
  const soakTable = markdownTable(
    ['traffic', 'rate/s', 'acknowledged', 'not acknowledged', 'ack p50 ms', 'ack p99 ms', 'end to end'],
    [
      ['inbound pushes (signed text)', String(soakResult.inboundRate), String(soakResult.inbound.ok), String(soakResult.inbound.notAcknowledged), fixed(soakResult.inbound.ack.p50, 2), fixed(soakResult.inbound.ack.p99, 2), `${soakResult.delivered} delivered to Vonage (${soakResult.duplicates} duplicates), p50 ${fixed(soakResult.e2e.p50, 1)} ms, p99 ${fixed(soakResult.e2e.p99, 1)} ms`],
      ['outbound RTC events (signed)', String(soakResult.outboundRate), String(soakResult.outbound.ok), String(soakResult.outbound.notAcknowledged), fixed(soakResult.outbound.ack.p50, 2), fixed(soakResult.outbound.ack.p99, 2), `${soakResult.relayed} sent to WeChat, ${soakResult.tokenFetches} token fetch(es)`],
    ],
  );

  const notes: string[] = [];
  if (s.soakS < DEFAULT_SOAK_S) notes.push(`- The soak was shortened to ${s.soakS} s (BENCH_SOAK_SECONDS; the default is ${DEFAULT_SOAK_S} s).`);
  if (s.skipPostgres) notes.push('- The PostgreSQL rows were skipped (BENCH_SKIP_POSTGRES=1).');
  if (s.nodeArgs) notes.push(`- The bridge ran with BENCH_NODE_ARGS="${s.nodeArgs}" (profiling slows it down).`);
  if (!o.drained) notes.push(`- Outbound: only ${o.sends} of ${o.acknowledged} acknowledged events reached WeChat before the drain timeout.`);
  if (delivery.duplicates || soakResult.duplicates) notes.push(`- Duplicate deliveries to Vonage: ${delivery.duplicates} (saturation), ${soakResult.duplicates} (soak).`);

  const caption =
    `Measured ${r.startedAt.toISOString().replace('T', ' ').slice(0, 16)} UTC on ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ` +
    `Node ${process.version}, every server a child process, load generators and fake Vonage / WeChat in the bench process, all on the same machine. ` +
    `Load average (1 / 5 / 15 min) before the run: ${load(r.loadBefore)}; at the end: ${load(r.loadAfter)} (the bench itself keeps about 2 cores busy). ` +
    `${r.pinned ? 'Every server pinned to one core (taskset), the load generators and fakes on the others. ' : 'Servers not pinned (no taskset or one core). '}` +
    `Saturation rows: ${r.loadGenerator} (one thread), ${s.connections} connections, ${s.warmUpS} s warm-up, then the mean of ${s.rounds} alternating rounds of ${s.durationS} s. Paced rows: open loop, ≤ ${s.connections} connections. ` +
    `Run took ${Math.round(r.elapsedS)} s.`;

  const markdown = [
    '## Benchmark results (`npm run bench`)',
    '',
    `_${caption}_`,
    '',
    table,
    '',
    ...(notes.length ? [...notes, ''] : []),
    '![Latency under increasing load](latency-under-load.svg)',
    '![Memory during the soak](soak-memory.svg)',
    '',
    '### Raw rows',
    '',
    `**Saturation** (${r.loadGenerator}, ${s.connections} connections; signed plain-text pushes, a distinct MsgId and sender each; the four servers run side by side, ` +
      `warmed up for ${s.warmUpS} s each, then measured in ${s.rounds} alternating rounds of ${s.durationS} s; the bridge's queue drains before the next server's round). ` +
      `The bridge's ${delivery.delivered} acknowledged messages ${delivery.complete ? 'all' : 'did not all'} reach Vonage, on average ${fixed(delivery.drainS, 1)} s after a round's load ended (${fixed(delivery.deliveredPerS)} msg/s from the round's start).`,
    '',
    closedLoop,
    '',
    `**Latency**, paced (open loop: a request is due at its time whatever happened before; latency counts from when it was due if it had to wait for a free connection). ` +
      `Pushes come from ${PACED_USERS} users. e2e = push written → the fake Vonage received the event (ms resolution). ` +
      `CPU % is of one core over the phase: the server's, and this bench process's (pacer, fake Vonage), which shares the machine's ${os.cpus().length} cores with it.`,
    '',
    paced,
    '',
    `**Outbound relay** (autocannon, ${s.connections} connections, ${s.durationS} s, relayed/s counted until WeChat accepted every acknowledged event; fake WeChat answering at once). Load average at start: ${r.outboundLoadAverage.toFixed(2)}.`,
    '',
    outboundTable,
    '',
    `**PostgreSQL** (same load as the saturation rows; three instances share this machine's ${cpu.length} cores with the load generator).${r.postgresLoadAverage === undefined ? '' : ` Load average at start: ${r.postgresLoadAverage.toFixed(2)}.`}`,
    '',
    postgresTable,
    '',
    `**Soak**: ${soakResult.durationS} s of mixed paced traffic on one bridge, RSS sampled every second; bridge CPU ${fixed(soakResult.cpuPercent)} % of a core. ` +
      `RSS ${fixed(soakResult.startRssMb)} MB at the start, ${fixed(soakResult.endRssMb)} MB at the end, peak ${fixed(soakResult.peakRssMb)} MB; ` +
      `least-squares slope over the second half ${fixed(soakResult.slopeMbPerMin, 2)} MB/min (threshold ${SOAK_SLOPE_LIMIT_MB_PER_MIN} MB/min): ` +
      `${soakResult.noGrowthTrend ? '**no growth trend**' : '**RSS grows**'}. ` +
      (soakResult.liveHeapMb !== undefined
        ? `After the soak a heap snapshot (which runs a full GC first) found ${fixed(soakResult.liveHeapMb, 1)} MB of reachable JS heap: the rest of the RSS is the node binary's mapped code (about 50 MB), heap space V8 has not collected or returned yet, and native allocations. `
        : '') +
      `Load average at start: ${r.soakLoadAverage.toFixed(2)}.`,
    '',
    soakTable,
    '',
    `RSS (MB) every 15 s: ${soakSeries.map((sample) => `${Math.round(sample.t)} s ${sample.rssMb.toFixed(0)}`).join(', ')}.`,
    '',
    ...(b ? backlogSection(b, s, r.backlogLoadAverage) : []),
  ].join('\n');

  return { markdown, latencySvg: latencyChart(r), memorySvg: memoryChart(r) };
}

function markdownTable(header: string[], rows: string[][], align?: Array<'l' | 'r'>): string {
  const alignment = header.map((_, index) => ((align?.[index] ?? (index === 0 ? 'l' : 'r')) === 'r' ? '---:' : '---'));
  const line = (cells: string[]) => `| ${cells.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), `| ${alignment.join(' | ')} |`, ...rows.map(line)].join('\n');
}

const COLORS = { http: '#7f7f7f', express: '#1f77b4', bridge: '#d62728', e2e: '#9467bd' };

function latencyChart(r: Results): string {
  const steps = (points: LoadPoint[]) => points.filter((p) => p.phase === 'step');
  const latency: Series[] = [];
  const achieved: Series[] = [];
  for (const key of ['http', 'express', 'bridge'] as const) {
    const points = steps(r.sweeps[key]);
    latency.push(
      { name: `${SERVER_NAMES[key]}: ack p99`, color: COLORS[key], points: points.map((p) => ({ x: p.offeredRate, y: p.ack.p99 })) },
      { name: `${SERVER_NAMES[key]}: ack p50`, color: COLORS[key], dash: '6 4', points: points.map((p) => ({ x: p.offeredRate, y: p.ack.p50 })) },
    );
    achieved.push({ name: `${SERVER_NAMES[key]}: ack p99`, color: COLORS[key], hideInLegend: true, points: points.map((p) => ({ x: p.offeredRate, y: p.achievedRate })) });
  }
  const bridgeSteps = steps(r.sweeps.bridge);
  latency.push(
    { name: 'bridge: end-to-end p99 (push → Vonage)', color: COLORS.e2e, points: bridgeSteps.map((p) => ({ x: p.offeredRate, y: p.e2e?.p99 ?? Number.NaN })) },
    { name: 'bridge: end-to-end p50', color: COLORS.e2e, dash: '6 4', points: bridgeSteps.map((p) => ({ x: p.offeredRate, y: p.e2e?.p50 ?? Number.NaN })) },
  );
  const rates = r.settings.rates;
  const lo = Math.min(...rates);
  const hi = Math.max(...rates);
  return lineChartSvg({
    title: 'Inbound latency under increasing load',
    subtitle:
      `open-loop paced load, ${r.settings.stepS} s per step, ≤ ${r.settings.connections} connections; ` +
      `${os.cpus().length} cores, Node ${process.version}, load avg ${r.sweepLoadAverage.toFixed(2)}; ${r.startedAt.toISOString().slice(0, 10)}`,
    panels: [
      {
        title: 'Latency (log scale)',
        x: { label: 'offered load, requests/s (log)', log: true, min: lo / 2, max: hi * 2 },
        y: { label: 'latency, ms (log)', log: true },
        series: latency,
        guides: [{ label: `${ACK_P99_TARGET_MS} ms target`, points: [{ x: lo / 2, y: ACK_P99_TARGET_MS }, { x: hi * 2, y: ACK_P99_TARGET_MS }] }],
      },
      {
        title: 'Acknowledged vs offered',
        x: { label: 'offered load, requests/s (log)', log: true, min: lo / 2, max: hi * 2 },
        y: { label: 'acknowledged, requests/s (log)', log: true, min: lo / 2, max: hi * 2 },
        series: achieved,
        guides: [{ label: 'all served', points: [{ x: lo / 2, y: lo / 2 }, { x: hi * 2, y: hi * 2 }] }],
      },
    ],
  });
}

function memoryChart(r: Results): string {
  const samples = r.soak.samples;
  const half = r.soak.durationS / 2;
  const secondHalf = samples.filter((s) => s.t >= half).map((s) => ({ x: s.t, y: s.rssMb }));
  const line = leastSquaresLine(secondHalf);
  const trend = Number.isFinite(line.slope)
    ? [
        { x: half, y: line.intercept + line.slope * half },
        { x: samples[samples.length - 1]!.t, y: line.intercept + line.slope * samples[samples.length - 1]!.t },
      ]
    : [];
  const maxRss = Math.max(...samples.map((s) => s.rssMb), RSS_TARGET_MB);
  return lineChartSvg({
    title: 'Bridge resident memory during the soak',
    subtitle:
      `${r.soak.inboundRate} pushes/s + ${r.soak.outboundRate} outbound events/s for ${r.soak.durationS} s; ` +
      `slope over the second half ${r.soak.slopeMbPerMin.toFixed(2)} MB/min (${r.soak.noGrowthTrend ? 'no growth trend' : 'growing'}); load avg ${r.soakLoadAverage.toFixed(2)}`,
    panelWidth: 720,
    panelHeight: 320,
    panels: [
      {
        title: '',
        x: { label: 'seconds since the start of the soak', min: 0, max: Math.ceil(r.soak.durationS / 30) * 30 },
        y: { label: 'RSS, MB', min: 0, max: Math.ceil((maxRss * 1.1) / 25) * 25 },
        series: [
          { name: 'bridge RSS (VmRSS, every second)', color: COLORS.bridge, markers: false, points: samples.map((s) => ({ x: s.t, y: s.rssMb })) },
          { name: `least-squares fit over the second half (${r.soak.slopeMbPerMin.toFixed(2)} MB/min)`, color: '#000000', dash: '6 4', markers: false, points: trend },
          ...(r.soak.liveHeapMb === undefined
            ? []
            : [{ name: 'live JS heap after a full GC (end)', color: '#9467bd', points: [{ x: samples[samples.length - 1]!.t, y: r.soak.liveHeapMb }] }]),
        ],
        guides: [{ label: `${RSS_TARGET_MB} MB target`, points: [{ x: 0, y: RSS_TARGET_MB }, { x: r.soak.durationS, y: RSS_TARGET_MB }] }],
      },
    ],
  });
}

// --- main ----------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const settings = readSettings();
  const processes = new ChildProcesses();
  if (processes.pinned && !pinBenchProcess()) progress('warning: could not pin the bench process away from the servers’ core');
  process.once('exit', () => processes.killAll());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench interrupted (${signal}): stopping ${processes.running} server process(es)\n`);
      processes.killAll();
      process.exit(130);
    });
  }
  try {
    const results = await measureAll(processes, settings);
    const { markdown, latencySvg, memorySvg } = report(results);
    const dir = path.join(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'latest.md'), markdown);
    writeFileSync(path.join(dir, 'latency-under-load.svg'), latencySvg);
    writeFileSync(path.join(dir, 'soak-memory.svg'), memorySvg);
    process.stdout.write(`\n${markdown}`);
    progress(`written: bench/results/latest.md, latency-under-load.svg, soak-memory.svg`);
  } finally {
    processes.killAll();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
