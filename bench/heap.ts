/**
 * Live JavaScript heap of a child process, from outside: the child runs with
 * `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=<dir>`; on SIGUSR2 Node runs a full garbage
 * collection and writes a heap snapshot, whose nodes' self sizes add up to what is still reachable.
 *
 * This separates a leak (reachable objects piling up) from RSS that only reflects garbage V8 has
 * not collected yet, or memory the allocator keeps: both look like growth in an RSS series.
 * Writing a snapshot pauses the child for about a second and needs memory of its own.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from '../test/support/wait';

export interface HeapSnapshots {
  /** Node arguments that make the child write snapshots into this directory. */
  nodeArgs: string[];
  /** Signals the child and waits for its snapshot; resolves with the live heap in MiB. */
  take(pid: number, timeoutMs?: number): Promise<number>;
  dispose(): void;
}

export function heapSnapshots(): HeapSnapshots {
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-bench-heap-'));
  let taken = 0;
  return {
    nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`],
    async take(pid, timeoutMs = 30_000) {
      const before = new Set(readdirSync(dir));
      process.kill(pid, 'SIGUSR2');
      const deadline = Date.now() + timeoutMs;
      let file: string | undefined;
      let lastSize = -1;
      // The file appears when writing starts; it is complete once it parses.
      while (Date.now() < deadline) {
        await sleep(200);
        file ??= readdirSync(dir).find((name) => !before.has(name) && name.endsWith('.heapsnapshot'));
        if (!file) continue;
        const size = statSync(path.join(dir, file)).size;
        if (size === 0 || size !== lastSize) {
          lastSize = size;
          continue;
        }
        try {
          const liveMb = liveHeapMb(readFileSync(path.join(dir, file), 'utf8'));
          rmSync(path.join(dir, file), { force: true });
          taken += 1;
          return liveMb;
        } catch {
          // Still being written.
        }
      }
      throw new Error(`heap snapshot ${taken + 1} of process ${pid} did not complete within ${timeoutMs} ms`);
    },
    dispose() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[] } };
  nodes: number[];
}

/** Sum of the self sizes of every node of a V8 heap snapshot, MiB. */
export function liveHeapMb(json: string): number {
  const snapshot = JSON.parse(json) as SnapshotJson;
  const fields = snapshot.snapshot.meta.node_fields;
  const selfSize = fields.indexOf('self_size');
  if (selfSize < 0) throw new Error('not a V8 heap snapshot');
  let total = 0;
  for (let index = selfSize; index < snapshot.nodes.length; index += fields.length) total += snapshot.nodes[index]!;
  return total / 1024 / 1024;
}

