/**
 * PostgreSQL for tests.
 *
 * - `createTestDatabase()`: a throwaway database on the shared server (127.0.0.1:5432, trust auth,
 *   user postgres; `TEST_POSTGRES_URL` overrides the admin URL), dropped again by `drop()`. Every
 *   test file gets its own, so files may run in parallel.
 * - `startPrivateCluster()`: a whole PostgreSQL server of its own (initdb into a temporary
 *   directory, a free port), for a test that stops and restarts the server without disturbing the
 *   other test files that use the shared one. It runs the machine's PostgreSQL binaries, as the
 *   `postgres` user when the tests run as root.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { freePort } from './net';

export const POSTGRES_ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const START_HINT =
  'start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (.ci/run does this)';

export interface TestDatabase {
  name: string;
  /** `postgres://…/<name>`, as DATABASE_URL. */
  url: string;
  /** Runs one statement on the database (a short-lived connection). */
  query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Drops the database, disconnecting whoever is still connected. */
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export async function runQuery<Row extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<Row>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(prefix = 'bridge_test'): Promise<TestDatabase> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  try {
    await runQuery(POSTGRES_ADMIN_URL, `CREATE DATABASE ${name}`);
  } catch (error) {
    throw new Error(`PostgreSQL at ${new URL(POSTGRES_ADMIN_URL).host} is not usable (${(error as Error).message}): ${START_HINT}`, { cause: error });
  }
  const url = withDatabase(POSTGRES_ADMIN_URL, name);
  let dropped = false;
  return {
    name,
    url,
    query: (sql, params) => runQuery(url, sql, params),
    async drop() {
      if (dropped) return;
      dropped = true;
      await runQuery(POSTGRES_ADMIN_URL, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

export interface PrivateCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  /** Fast shutdown: sessions are terminated, the server exits, nothing committed is lost. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server (immediately) and deletes its directory. */
  destroy(): Promise<void>;
}

/** The directory with initdb and pg_ctl: the newest /usr/lib/postgresql/<version>/bin, else PATH. */
function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((entry) => /^\d+$/.test(entry) && existsSync(path.join(root, entry, 'bin', 'pg_ctl')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(root, versions[0], 'bin');
  }
  return '';
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function run(command: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(user ?? {}),
      cwd: tmpdir(),
      // pg_ctl's server keeps running after pg_ctl exits: never tie it to our pipes.
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(command)} exited with ${code}: ${stderr.trim()}`))));
  });
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const bin = postgresBinDir();
  const tool = (name: string) => (bin ? path.join(bin, name) : name);
  const user = serverUser();
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const pgCtl = (...args: string[]) => run(tool('pg_ctl'), ['-D', dataDir, ...args], user);
  let running = false;

  const start = async () => {
    await pgCtl(
      '-w',
      '-t',
      '30',
      '-l',
      path.join(dir, 'server.log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=50 -c shared_buffers=16MB`,
      'start',
    );
    running = true;
  };

  try {
    await run(tool('initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user);
    await start();
  } catch (error) {
    if (running) await pgCtl('-m', 'immediate', '-w', 'stop').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start a private PostgreSQL server: ${(error as Error).message}`, { cause: error });
  }

  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await pgCtl('-m', 'fast', '-w', '-t', '30', 'stop');
      running = false;
    },
    start,
    async destroy() {
      if (running) await pgCtl('-m', 'immediate', '-w', '-t', '30', 'stop').catch(() => undefined);
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
