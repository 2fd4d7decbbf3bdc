/**
 * The one durable store. Everything that must survive a crash lives behind this interface:
 * the job queue (with dedup keys), dead letters, and later tokens and mappings.
 *
 * The store knows nothing of WeChat or Vonage: job payloads are opaque JSON values.
 */

export type JobKind = string;

export interface NewJob {
  /** What handler runs it, e.g. `deliver-to-vonage`. */
  kind: JobKind;
  /**
   * Jobs with the same order key run one at a time, oldest first (e.g. the WeChat openid),
   * so that one user's messages keep their order. Different keys run in parallel.
   */
  orderKey: string;
  /** Opaque JSON-serialisable payload. */
  payload: unknown;
  /**
   * When set, a job with this key is stored at most once, ever (within the dedup retention):
   * enqueueing it again is a no-op that reports `duplicate`.
   */
  dedupKey?: string;
  /** Earliest time to run it (epoch ms); defaults to now. */
  runAt?: number;
}

export interface Job {
  id: string;
  kind: JobKind;
  orderKey: string;
  payload: unknown;
  /** How many times a handler has been started on it before this claim (0 on the first run). */
  attempts: number;
  /** Epoch ms when the job was first stored: the 24-hour give-up clock starts here. */
  createdAt: number;
  /** The last error recorded by `retry`, if any. */
  lastError: string | undefined;
}

export interface EnqueueResult {
  /** `stored`: new job, now durable. `duplicate`: its dedup key was already stored; nothing changed. */
  outcome: 'stored' | 'duplicate';
}

export interface DeadLetter {
  id: string;
  kind: JobKind;
  orderKey: string;
  payload: unknown;
  /** How many times a handler ran it in all. */
  attempts: number;
  createdAt: number;
  deadAt: number;
  reason: string;
}

export interface QueueStats {
  /** Live jobs per kind (pending or leased). */
  depth: Record<JobKind, number>;
  /** Age in ms of the oldest live job, 0 when empty. */
  oldestAgeMs: number;
  deadLetters: number;
}

export interface StoredToken {
  value: string;
  /** Epoch ms after which the value must not be used. */
  expiresAt: number;
}

export interface Store {
  /**
   * Stores jobs durably, each with its dedup key, in one transaction: when the promise
   * resolves the jobs survive a crash. Results are in the order of `jobs`.
   */
  enqueue(jobs: NewJob[]): Promise<EnqueueResult[]>;

  /**
   * Leases up to `limit` runnable jobs for `leaseMs`. A job is runnable when its `runAt` has come,
   * it is not leased (or its lease has expired), and it is the oldest live job of its order key.
   * So at most one job per order key is ever out at once.
   */
  claim(options: { limit: number; leaseMs: number; kinds?: JobKind[] }): Promise<Job[]>;

  /**
   * The job is done: remove it. `complete`, `retry` and `deadLetter` on an unknown id do nothing.
   * They carry no lease token yet: one process never runs a job twice at once (the worker guards
   * that), which is enough for one instance; several instances will need a claim token here.
   */
  complete(jobId: string): Promise<void>;

  /** Give the job back to run again at `runAt` (epoch ms), recording the error. */
  retry(jobId: string, runAt: number, error: string): Promise<void>;

  /** Move the job to the dead letters with the reason; it stops blocking its order key. */
  deadLetter(jobId: string, reason: string): Promise<void>;

  /** Dead letters, newest first. */
  listDeadLetters(options?: { limit?: number }): Promise<DeadLetter[]>;

  /** Puts a dead letter back on the queue as a fresh job (attempts reset); false if unknown. */
  replayDeadLetter(id: string): Promise<boolean>;

  stats(): Promise<QueueStats>;

  /**
   * Records `key` as seen until `expiresAt` (epoch ms). Resolves true the first time, false while
   * the key is remembered (e.g. a webhook JWT `jti` already used). Expired keys are forgotten.
   */
  markSeen(key: string, expiresAt: number): Promise<boolean>;

  /** A shared secret value with its expiry (e.g. the WeChat access token), expired or not, or undefined. */
  getToken(name: string): Promise<StoredToken | undefined>;
  putToken(name: string, token: StoredToken): Promise<void>;

  /**
   * Takes the named lock for `ttlMs` if it is free, expired or already held by `owner` (then it is
   * extended); resolves whether it was taken.
   * Locks are shared by every process on the same database (one token refresh at a time).
   */
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  unlock(name: string, owner: string): Promise<void>;

  /** Throws when the store cannot serve (for /readyz). */
  ping(): Promise<void>;

  close(): Promise<void>;
}
