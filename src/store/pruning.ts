/**
 * What expires in the store and how it is pruned, the same on both backends: which rows of which
 * table expire when, at most how many one pass deletes (so that pruning never holds the database
 * for long), and how often a pass runs (after an enqueue, at a low rate; a failed pass is logged and
 * the next one retries). Each backend turns `EXPIRING_ROWS` into its own DELETE statements.
 */
import type { StoreLogger } from './backend-options';
import { describeError } from './error-details';
import { SEND_ALLOWANCE_KEPT_AFTER_CLOSE_MS } from './store';

/** Upper bound of rows deleted from one table by one prune pass. */
export const PRUNE_BATCH = 5000;

export interface ExpiringRows {
  table: string;
  /** The columns that name a row (its primary key). */
  key: string;
  /** A row expires once this time (epoch ms) is `keptAfter` or longer ago. */
  column: string;
  /** Milliseconds, or the store's dedup retention. */
  keptAfter: number | 'dedup retention';
}

/** In the order a pass prunes them. */
export const EXPIRING_ROWS: readonly ExpiringRows[] = [
  { table: 'dedup_keys', key: 'key', column: 'created_at', keptAfter: 'dedup retention' },
  { table: 'seen_keys', key: 'key', column: 'expires_at', keptAfter: 0 },
  { table: 'locks', key: 'name', column: 'expires_at', keptAfter: 0 },
  { table: 'uploaded_media', key: 'key', column: 'expires_at', keptAfter: 0 },
  { table: 'send_allowances', key: 'scope, kind', column: 'closes_at', keptAfter: SEND_ALLOWANCE_KEPT_AFTER_CLOSE_MS },
  { table: 'remembered_values', key: 'key', column: 'expires_at', keptAfter: 0 },
];

export function keptAfterMs(rows: ExpiringRows, dedupRetentionMs: number): number {
  return rows.keptAfter === 'dedup retention' ? dedupRetentionMs : rows.keptAfter;
}

/** What `pruneExpired` reports: the dedup and seen keys one pass deleted. */
export interface PruneResult {
  dedupKeys: number;
  seenKeys: number;
}

/** The report of a pass, from the rows it deleted per table. */
export function toPruneResult(deleted: ReadonlyMap<string, number>): PruneResult {
  return { dedupKeys: deleted.get('dedup_keys') ?? 0, seenKeys: deleted.get('seen_keys') ?? 0 };
}

/** Runs prune passes at most once per interval and never two at once; a failing pass is logged, never thrown. */
export class PruneSchedule {
  private lastRunAt: number;
  private running = false;

  constructor(
    private readonly intervalMs: number,
    startedAt: number,
    private readonly logger: StoreLogger | undefined,
  ) {
    this.lastRunAt = startedAt;
  }

  runIfDue(now: number, prune: () => unknown): void {
    if (this.running || now - this.lastRunAt < this.intervalMs) return;
    this.lastRunAt = now;
    this.run(prune);
  }

  /** Runs a pass now, whether due or not. */
  run(prune: () => unknown): void {
    let pass: unknown;
    try {
      pass = prune();
    } catch (error) {
      this.warn(error);
      return;
    }
    if (!(pass instanceof Promise)) return;
    this.running = true;
    pass
      .catch((error: unknown) => this.warn(error))
      .finally(() => {
        this.running = false;
      });
  }

  private warn(error: unknown): void {
    this.logger?.warn({ error: describeError(error) }, 'pruning expired dedup keys failed; will retry later');
  }
}
