/**
 * Cost that must not grow with the backlog: two bridges side by side, one on an empty queue and one
 * with `backlog` jobs waiting, as after Vonage was down for a while (every job waiting for its retry).
 *
 * 1. The backlog is written into the second bridge's SQLite file before it starts, through the store
 *    (the jobs a WeChat push makes, `inboundJobs`, from `BACKLOG_USERS` users), due in an hour.
 * 2. Both bridges warm up with the fake Vonage up; then each fake Vonage is down (it answers `503`
 *    with `Retry-After: 3600`, so every new job fails once and waits too) and the two bridges are
 *    loaded in alternating rounds (wrk, as the saturation rounds): acknowledgement rate and p99.
 *    They share one core, so each round waits until both have finished attempting what the rounds
 *    before stored (their CPU use has gone quiet).
 * 3. Vonage comes back: the scripts are cleared and every waiting job is made due at once (an UPDATE
 *    through a second connection to the file, as a retry time coming due would), and the bench waits
 *    until every job of both bridges has reached its fake Vonage: the drain rates.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { inboundJobs } from '../src/bridge/to-vonage/inbound-jobs';
import { SqliteStore } from '../src/store/sqlite/store';
import type { NewJob } from '../src/store/store';
import { readWeChatMessage } from '../src/wechat/message';
import { startFakeVonage, type FakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { CONVERSATION_ID, DeliveryLog, msgIdOf, startBridge, VONAGE_APP_ID, type RunningBridge } from './bridge';
import { waitUntilQuiet, type ChildProcesses } from './processes';
import { closedLoopPushes } from './wrk';

/** The backlog's senders: a backlog of one user would be one head, not a queue to search. */
const BACKLOG_USERS = 10_000;
/** The message-id stream of the backlog's messages (see `msgIdOf`); the rounds use 0..(2 × rounds). */
const BACKLOG_STREAM = 80;
const ENQUEUE_CHUNK = 5_000;

export interface BacklogRow {
  rps: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export interface BacklogSide {
  name: string;
  rounds: BacklogRow[];
  /** Means over the rounds. */
  rps: number;
  p99: number;
  /** Jobs waiting when Vonage came back (the backlog, plus what the rounds acknowledged). */
  waiting: number;
  /** Delivered per second once Vonage was back, from then to the last delivery. */
  drainPerS: number;
  drainS: number;
  /** Every waiting job reached the fake Vonage within the timeout, none twice. */
  drained: boolean;
  duplicates: number;
  peakRssMb: number | undefined;
}

export interface BacklogResult {
  backlog: number;
  fillS: number;
  empty: BacklogSide;
  withBacklog: BacklogSide;
}

export interface BacklogOptions {
  processes: ChildProcesses;
  backlog: number;
  rounds: number;
  durationS: number;
  warmUpS: number;
  connections: number;
  drainTimeoutMs?: number;
  log?: (line: string) => void;
}

function backlogXml(index: number): string {
  const openid = `oBacklogUser${index % BACKLOG_USERS}`;
  return (
    `<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[${openid}]]></FromUserName>` +
    `<CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
    `<Content><![CDATA[waiting while Vonage was down]]></Content><MsgId>${msgIdOf(BACKLOG_STREAM, index)}</MsgId></xml>`
  );
}

/** Writes `count` inbound messages' jobs, due in an hour, into a new SQLite file. */
export async function fillBacklog(file: string, count: number): Promise<void> {
  const store = SqliteStore.open(file);
  try {
    const runAt = Date.now() + 60 * 60 * 1000;
    for (let start = 0; start < count; start += ENQUEUE_CHUNK) {
      const jobs: NewJob[] = [];
      for (let index = start; index < Math.min(count, start + ENQUEUE_CHUNK); index += 1) {
        for (const job of inboundJobs(readWeChatMessage(backlogXml(index)), { conversationId: CONVERSATION_ID })) jobs.push({ ...job, runAt });
      }
      await store.enqueue(jobs);
    }
  } finally {
    await store.close();
  }
}

/** Vonage is back: every job not leased is due now (what its retry time coming due does). */
function makeEverythingDue(file: string): void {
  const db = new DatabaseSync(file);
  try {
    db.exec('PRAGMA busy_timeout = 10000');
    const now = Date.now();
    db.prepare('UPDATE jobs SET run_at = ?, available_at = ? WHERE lease_until IS NULL').run(now, now);
  } finally {
    db.close();
  }
}

/** Vonage down: every post is answered 503 with a Retry-After of an hour, `count` times. */
function vonageDown(vonage: FakeVonage, count: number): void {
  // In slices: `script` spreads its argument into a push.
  const slice = new Array<{ status: number; retryAfter: string }>(10_000).fill({ status: 503, retryAfter: '3600' });
  for (let scripted = 0; scripted < count; scripted += slice.length) vonage.script(slice);
}

interface Side {
  name: string;
  file: string;
  vonage: FakeVonage;
  bridge: RunningBridge;
  deliveries: DeliveryLog;
  rounds: BacklogRow[];
  acknowledged: number;
  backlog: number;
}

export async function benchBacklog(options: BacklogOptions): Promise<BacklogResult> {
  const { processes, backlog, rounds, durationS, warmUpS, connections } = options;
  const drainTimeoutMs = options.drainTimeoutMs ?? 300_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-backlog-'));
  const sides: Side[] = [];
  try {
    const filledAt = Date.now();
    const backlogFile = path.join(dir, 'backlog.db');
    await fillBacklog(backlogFile, backlog);
    const fillS = (Date.now() - filledAt) / 1000;
    options.log?.(`  ${backlog} jobs written in ${fillS.toFixed(1)} s`);

    for (const [name, file, waiting] of [
      ['bridge, empty queue', path.join(dir, 'empty.db'), 0],
      [`bridge, ${backlog} jobs waiting`, backlogFile, backlog],
    ] as const) {
      const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
      let bridge: RunningBridge;
      try {
        bridge = await startBridge({ processes, name, vonage, databaseUrl: `sqlite:${file}` });
      } catch (error) {
        await vonage.close();
        throw error;
      }
      sides.push({ name, file, vonage, bridge, deliveries: new DeliveryLog(vonage), rounds: [], acknowledged: 0, backlog: waiting });
    }

    // Warm-up with Vonage up (JIT, SQLite's cache); its messages are delivered before the rounds.
    for (const side of sides) {
      const warmUp = await closedLoopPushes(`${side.name} (warm-up)`, side.bridge.port, 0, warmUpS, connections);
      if (!(await side.deliveries.waitForDelivered(warmUp.acknowledged, drainTimeoutMs))) {
        throw new Error(`${side.name}: the warm-up's messages were not delivered`);
      }
      side.deliveries.forgetUnmatched();
    }

    for (const side of sides) vonageDown(side.vonage, 500_000);
    for (let round = 1; round <= rounds; round += 1) {
      for (const [index, side] of sides.entries()) {
        // Both bridges share one core, and each goes on attempting its round's new jobs (once each)
        // after the load ends: a round starts when neither is still busy with the previous one.
        for (const each of sides) await waitUntilQuiet(each.bridge.server);
        const row = await closedLoopPushes(side.name, side.bridge.port, index * rounds + round, durationS, connections);
        side.bridge.server.assertAlive();
        side.rounds.push({ rps: row.rps, p99: row.p99, non2xx: row.non2xx, errors: row.errors });
        side.acknowledged += row.acknowledged;
        options.log?.(`  round ${round}, ${side.name}: ${row.rps.toFixed(0)} req/s, p99 ${row.p99.toFixed(1)} ms, ${row.non2xx} non-2xx`);
      }
    }

    const results: BacklogSide[] = [];
    for (const side of sides) {
      side.vonage.clearScript();
      const before = side.deliveries.delivered;
      const waiting = side.backlog + side.acknowledged;
      const backAt = Date.now();
      makeEverythingDue(side.file);
      const drained = await side.deliveries.waitForDelivered(before + waiting, drainTimeoutMs);
      const drainS = Math.max(0.001, (side.deliveries.lastDeliveryAt - backAt) / 1000);
      const delivered = side.deliveries.delivered - before;
      options.log?.(`  ${side.name}: Vonage back, ${delivered} of ${waiting} delivered in ${drainS.toFixed(1)} s (${(delivered / drainS).toFixed(0)}/s)`);
      results.push({
        name: side.name,
        rounds: side.rounds,
        rps: mean(side.rounds.map((row) => row.rps)),
        p99: mean(side.rounds.map((row) => row.p99)),
        waiting,
        drainPerS: delivered / drainS,
        drainS,
        drained: drained && side.deliveries.duplicates === 0,
        duplicates: side.deliveries.duplicates,
        peakRssMb: side.bridge.server.memory()?.peakRssMb,
      });
    }
    return { backlog, fillS, empty: results[0]!, withBacklog: results[1]! };
  } finally {
    for (const side of sides) {
      await side.bridge.stop();
      await side.vonage.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
