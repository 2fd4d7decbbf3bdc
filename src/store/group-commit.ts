/**
 * Group commit, as both stores do it: `enqueue` calls made in the same turn of the event loop are
 * written together (one transaction, one flush to the disk), and calls made while batches are in
 * flight form the next batch, so batches grow under load and stay small when idle. Each call still
 * gets exactly its own results.
 *
 * How a batch is written, and so which calls of it fail, is the backend's `write` (SQLite: a
 * savepoint per call, then an fsync; PostgreSQL: one statement, all or nothing). This module decides
 * which calls form a batch and when it starts, within the backend's limits (batches in flight, jobs
 * per batch), and rejects a call that waits past its deadline: not known to be stored, so the caller
 * must not acknowledge it (if the commit lands later, the retried message finds its dedup key).
 */
import type { BatchCommit, StoreLogger } from './backend-options';
import { describeError } from './error-details';
import type { PreparedJob } from './jobs';
import type { EnqueueResult } from './store';

/** A key to record as seen with the jobs (see `EnqueueOptions`), its expiry in whole milliseconds. */
export interface SeenKey {
  key: string;
  expiresAt: number;
}

/** One `enqueue` call waiting in a batch. Settling it a second time does nothing. */
export interface PendingEnqueue {
  readonly jobs: readonly PreparedJob[];
  readonly seenKeys: readonly SeenKey[];
  resolve(results: EnqueueResult[]): void;
  reject(error: unknown): void;
}

export interface GroupCommitOptions {
  /**
   * Writes one batch and settles every call in it, calling `committed` once the batch's
   * transaction has committed (the metrics hook hears of it then, even while the batch still waits
   * for its fsync). Resolves when every call of the batch is settled.
   */
  write(batch: PendingEnqueue[], committed: (batch: BatchCommit) => void): Promise<void>;
  /** Batches in flight at once. Default: no limit. */
  maxConcurrentBatches?: number;
  /** Jobs in one batch at most (a single larger call is still one batch). Default: no limit. */
  maxBatchJobs?: number;
  /** A call not settled this long after it was made is rejected. Default: no deadline. */
  timeoutMs?: number;
  onBatchCommit?: (batch: BatchCommit) => void;
  logger?: StoreLogger;
}

interface Call extends PendingEnqueue {
  settled: boolean;
}

export class GroupCommit {
  private pending: Call[] = [];
  private flushHandle: NodeJS.Immediate | undefined;
  private readonly batchesInFlight = new Set<Promise<void>>();
  private readonly maxConcurrentBatches: number;
  private readonly maxBatchJobs: number;

  constructor(private readonly options: GroupCommitOptions) {
    this.maxConcurrentBatches = Math.max(1, Math.floor(options.maxConcurrentBatches ?? Number.POSITIVE_INFINITY));
    this.maxBatchJobs = Math.max(1, Math.floor(options.maxBatchJobs ?? Number.POSITIVE_INFINITY));
  }

  /** Resolves with one result per job once the batch holding the call is written (at once when there is nothing to write). */
  add(jobs: readonly PreparedJob[], seenKeys: readonly SeenKey[]): Promise<EnqueueResult[]> {
    if (jobs.length === 0 && seenKeys.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const call: Call = {
        jobs,
        seenKeys,
        settled: false,
        resolve: (results) => {
          if (call.settled) return;
          call.settled = true;
          clearTimeout(timer);
          resolve(results);
        },
        reject: (error) => {
          if (call.settled) return;
          call.settled = true;
          clearTimeout(timer);
          reject(error);
        },
      };
      const { timeoutMs } = this.options;
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          call.reject(new Error(`enqueue not committed within ${timeoutMs} ms (database slow or unreachable)`));
        }, timeoutMs);
      }
      this.pending.push(call);
      this.flushHandle ??= setImmediate(() => {
        this.flushHandle = undefined;
        this.startBatches();
      });
    });
  }

  /** Starts the batches of the calls waiting now, instead of at the end of this turn of the event loop. */
  flush(): void {
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    this.startBatches();
  }

  /** Writes every waiting call and resolves once no batch is in flight. */
  async drain(): Promise<void> {
    for (;;) {
      this.flush();
      if (this.batchesInFlight.size === 0) return;
      await Promise.race(this.batchesInFlight);
    }
  }

  /** Starts batches while calls wait and another batch may be in flight. */
  private startBatches(): void {
    while (this.batchesInFlight.size < this.maxConcurrentBatches) {
      // Calls that timed out while waiting are already rejected: leave them out.
      this.pending = this.pending.filter((call) => !call.settled);
      if (this.pending.length === 0) return;
      const batch: Call[] = [];
      let jobs = 0;
      while (this.pending.length > 0 && (batch.length === 0 || jobs + this.pending[0]!.jobs.length <= this.maxBatchJobs)) {
        const call = this.pending.shift()!;
        batch.push(call);
        jobs += call.jobs.length;
      }
      const running: Promise<void> = this.options.write(batch, (committed) => this.report(committed)).finally(() => {
        this.batchesInFlight.delete(running);
        // Whatever arrived meanwhile is the next batch.
        this.startBatches();
      });
      this.batchesInFlight.add(running);
    }
  }

  private report(batch: BatchCommit): void {
    try {
      this.options.onBatchCommit?.(batch);
    } catch (error) {
      // A metrics hook must never turn a committed batch into a failure or an uncaught exception.
      this.options.logger?.warn({ error: describeError(error) }, 'onBatchCommit hook threw');
    }
  }
}
