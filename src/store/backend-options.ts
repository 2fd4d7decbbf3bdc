/**
 * What both store backends are given (open-store.ts passes it to whichever it opens), and the
 * defaults they share.
 */

const DAY_MS = 24 * 60 * 60 * 1000;

/** How long a dedup key is remembered unless told. */
export const DEFAULT_DEDUP_RETENTION_MS = 7 * DAY_MS;

/** Expired rows are pruned after an enqueue at most this often unless told. */
export const DEFAULT_PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/** Where a store reports what fails in the background (pruning, lost connections, a metrics hook). */
export interface StoreLogger {
  warn(details: object, message: string): void;
}

/** One group commit: the enqueue calls in it, the jobs in them, and the jobs newly stored. */
export interface BatchCommit {
  calls: number;
  jobs: number;
  stored: number;
}

export interface BackendOptions {
  /** Clock (epoch ms); tests move time with it. Default: the process clock (SQLite), the database's (PostgreSQL). */
  now?: () => number;
  /** How long a dedup key is remembered. Default 7 days. */
  dedupRetentionMs?: number;
  /** Expired dedup and seen keys are pruned after an enqueue at most this often. Default 10 minutes. */
  pruneIntervalMs?: number;
  /** Called after each group commit (a metrics hook). */
  onBatchCommit?: (batch: BatchCommit) => void;
  /** Where background failures and lost connections are reported; they never fail a caller by themselves. */
  logger?: StoreLogger;
}
