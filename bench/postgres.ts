/**
 * Inbound acknowledgement on PostgreSQL: the real bridge (`dist/main.js`) with `DATABASE_URL` on the
 * local PostgreSQL server (127.0.0.1:5432, a fresh database per row, dropped afterwards), loaded
 * exactly like the SQLite row of bench/run.ts (a short autocannon warm-up, then autocannon with signed
 * plain-text pushes, a distinct MsgId and sender per request, a fake Vonage receiving the deliveries
 * meanwhile):
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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFakeVonage } from '../test/support/fake-vonage';
import { testKeyPair } from '../test/support/keys';
import { createTestDatabase } from '../test/support/postgres';
import { autocannonPushes, startBridge, VONAGE_APP_ID, type ClosedLoopRow, type RunningBridge } from './bridge';
import { ChildProcesses } from './processes';

export interface PostgresBenchRow extends ClosedLoopRow {
  database: 'sqlite' | 'postgres';
  instances: number;
  /** Peak resident memory of the busiest instance, MiB. */
  peakRssMb: number | undefined;
}

export interface PostgresBenchOptions {
  /** Seconds of load per row. Default BENCH_DURATION or 10. */
  durationS?: number;
  /** Concurrent connections (rounded up to a multiple of the instance count). Default BENCH_CONNECTIONS or 50. */
  connections?: number;
  /** Seconds of warm-up load before each row. Default 3. */
  warmUpS?: number;
  /** Also measure one instance on SQLite first, the same way (for a standalone run). Default false. */
  withSqlite?: boolean;
  /** Who owns the bridge processes; default its own. */
  processes?: ChildProcesses;
}

export async function benchPostgres(options: PostgresBenchOptions = {}): Promise<PostgresBenchRow[]> {
  const durationS = options.durationS ?? Number(process.env.BENCH_DURATION ?? 10);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 50);
  const warmUpS = options.warmUpS ?? 3;
  const processes = options.processes ?? new ChildProcesses();
  const rows: PostgresBenchRow[] = [];
  try {
    if (options.withSqlite) {
      const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-sqlite-'));
      try {
        const name = 'bridge ×1: signed text → durable SQLite → success';
        rows.push({ ...(await measure(processes, name, 1, `sqlite:${path.join(dir, 'bench.db')}`, durationS, warmUpS, connections)), database: 'sqlite' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    for (const instances of [1, 3]) {
      const db = await createTestDatabase('bridge_bench');
      try {
        const name = `bridge ×${instances}${instances > 1 ? ' (round robin)' : ''}: signed text → PostgreSQL → success`;
        rows.push({ ...(await measure(processes, name, instances, db.url, durationS, warmUpS, connections)), database: 'postgres' });
      } finally {
        await db.drop();
      }
    }
    return rows;
  } finally {
    if (!options.processes) processes.killAll();
  }
}

async function measure(
  processes: ChildProcesses,
  name: string,
  instances: number,
  databaseUrl: string,
  durationS: number,
  warmUpS: number,
  connections: number,
): Promise<Omit<PostgresBenchRow, 'database'>> {
  const vonage = await startFakeVonage({ publicKeyPem: testKeyPair().publicKeyPem, applicationId: VONAGE_APP_ID });
  const bridges: RunningBridge[] = [];
  try {
    // One after the other: concurrent starts would race for the migration lock, which is tested elsewhere.
    for (let index = 0; index < instances; index += 1) {
      bridges.push(await startBridge({ processes, name: `bridge ${index + 1}/${instances} (PostgreSQL)`, vonage, databaseUrl }));
    }
    const ports = bridges.map((bridge) => bridge.port);
    const drainEvents = setInterval(() => vonage.events.splice(0), 200); // deliveries: not looked at here
    try {
      if (warmUpS > 0) await autocannonPushes(`${name} (warm-up)`, ports, 0, warmUpS, connections);
      const row = await autocannonPushes(name, ports, 1, durationS, connections);
      for (const bridge of bridges) bridge.server.assertAlive();
      const peaks = bridges.map((bridge) => bridge.server.memory()?.peakRssMb ?? 0);
      return { ...row, instances, peakRssMb: Math.max(...peaks) || undefined };
    } finally {
      clearInterval(drainEvents);
    }
  } finally {
    await Promise.all(bridges.map((bridge) => bridge.stop()));
    await vonage.close();
  }
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
      process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    });
}
