/**
 * The bench's child processes (the bridge, the bare baselines), all on this Node (`process.execPath`,
 * Node 24 under `npm run bench`), each owned by one `ChildProcesses` so that every one of them is
 * stopped at the end of the run, whether it succeeded, failed or was interrupted.
 *
 * A child's stderr is kept (its last few KiB) so that a server that refuses to start, or dies under
 * load, is reported with its own words rather than as a bare "never answered".
 */
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { readFileSync } from 'node:fs';
import { waitForHttp } from '../test/support/net';

const STDERR_TAIL_BYTES = 4096;

export interface ServerProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Resolves once `url` answers; rejects with the child's stderr if it exits first or never answers. */
  ready(url: string, timeoutMs?: number): Promise<void>;
  /** Resident memory now and at its peak (VmRSS / VmHWM of /proc/<pid>/status), MiB. */
  memory(): ProcessMemory | undefined;
  /** CPU seconds used so far (user + system). */
  cpuSeconds(): number | undefined;
  /** The last lines the child wrote to stderr. */
  stderrTail(): string;
  /** Throws (with the stderr tail) if the child has exited: call after a load to catch a crash. */
  assertAlive(): void;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface ProcessMemory {
  rssMb: number;
  peakRssMb: number;
}

export interface StartOptions {
  /** Node arguments before the script (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Reads VmRSS and VmHWM of a live process (Linux); undefined once it is gone. */
export function processMemory(pid: number): ProcessMemory | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    if (!rss || !hwm) return undefined;
    return { rssMb: Number(rss[1]) / 1024, peakRssMb: Number(hwm[1]) / 1024 };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system) a live process has used, from /proc/<pid>/stat (Linux; clock ticks
 * of 1/100 s, USER_HZ on every Linux architecture the bench runs on); undefined once it is gone.
 */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces), from field 3 on: utime is 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Resolves once `server` has used under `maxShare` of a core over `windowMs` (its background work,
 * such as retries still being attempted, is done), or after `timeoutMs`; true if it went quiet.
 */
export async function waitUntilQuiet(server: Pick<ServerProcess, 'cpuSeconds'>, options: { windowMs?: number; maxShare?: number; timeoutMs?: number } = {}): Promise<boolean> {
  const windowMs = options.windowMs ?? 500;
  const maxShare = options.maxShare ?? 0.05;
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let before = server.cpuSeconds();
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const now = server.cpuSeconds();
    if (before === undefined || now === undefined) return false;
    if (now - before <= (maxShare * windowMs) / 1000) return true;
    before = now;
  }
  return false;
}

/** `BENCH_NODE_ARGS` (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"): extra Node arguments for the bridge. */
export function bridgeNodeArgs(): string[] {
  return [...productionNodeArgs(), ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
}

/**
 * The V8 flags `npm start` gives the bridge (read from package.json, so the bench measures what
 * production runs): a small young generation and a capped old space keep RSS flat under load.
 */
export function productionNodeArgs(): string[] {
  const start = (JSON.parse(readFileSync(path.join(__dirname, '../../package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start;
  return start.split(' ').filter((word) => /^--max-[a-z-]+-size=\d+$/.test(word));
}

/** `taskset` is installed and there are at least two cores: servers get one core, the load generator the others. */
const canPin = (): boolean => process.env.BENCH_PIN !== '0' && os.cpus().length >= 2 && spawnSync('taskset', ['--version']).error === undefined;

/** The core every server is pinned to (the last one); the bench process and wrk keep the rest. */
export const SERVER_CORE = os.cpus().length - 1;

/** Pins this process (the load generators, the fakes) away from the servers' core; true when pinned. */
export function pinBenchProcess(): boolean {
  if (!canPin()) return false;
  const others = Array.from({ length: SERVER_CORE }, (_, core) => core).join(',');
  return spawnSync('taskset', ['-a', '-pc', others, String(process.pid)]).status === 0;
}

export class ChildProcesses {
  private readonly live = new Set<ChildProcess>();
  /** Whether servers run under `taskset -c SERVER_CORE` (decided once). */
  readonly pinned = canPin();

  start(name: string, script: string, options: StartOptions): ServerProcess {
    const argv = [...(options.nodeArgs ?? []), script];
    // taskset execs node, so the pid is node's own (memory and CPU figures read /proc/<pid>).
    const child = spawn(this.pinned ? 'taskset' : process.execPath, this.pinned ? ['-c', String(SERVER_CORE), process.execPath, ...argv] : argv, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`could not start ${name} (${process.execPath} ${script})`);
    const pid = child.pid;
    this.live.add(child);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => {
        this.live.delete(child);
        resolve(signal ? `signal ${signal}` : `code ${code}`);
      });
    });
    const hasExited = () => child.exitCode !== null || child.signalCode !== null;
    const describe = (what: string) => `${name} ${what}${stderr.trim() ? `; its stderr:\n${indent(stderr.trim())}` : ' (nothing on stderr)'}`;

    return {
      name,
      pid,
      child,
      async ready(url, timeoutMs = 30_000) {
        const died = exited.then((how) => {
          throw new Error(describe(`exited (${how}) before answering ${url}`));
        });
        try {
          await Promise.race([waitForHttp(url, timeoutMs), died]);
        } catch (error) {
          if (hasExited()) throw new Error(describe('exited before it was ready'), { cause: error });
          throw new Error(describe(`did not answer ${url} within ${timeoutMs} ms (${(error as Error).message})`), { cause: error });
        } finally {
          died.catch(() => undefined);
        }
      },
      memory: () => processMemory(pid),
      cpuSeconds: () => processCpuSeconds(pid),
      stderrTail: () => stderr,
      assertAlive() {
        if (hasExited()) throw new Error(describe(`exited during the run (${child.signalCode ?? `code ${child.exitCode}`})`));
      },
      async stop(graceMs = 15_000) {
        if (hasExited()) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
  }

  /** SIGKILL for every child still running (synchronous: also usable from an `exit` handler). */
  killAll(): void {
    for (const child of this.live) child.kill('SIGKILL');
  }

  get running(): number {
    return this.live.size;
  }
}

const indent = (text: string) =>
  text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
