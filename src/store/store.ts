/**
 * The one durable store. Everything that must survive a crash lives behind this interface:
 * the job queue (with dedup keys), dead letters, seen keys, tokens and locks, the per-user conversation
 * mappings, the uploaded-media cache, send allowances and remembered values. Each is a role interface
 * (`JobQueue`, `SeenKeys`, …) that a caller names for what it uses; `Store` is all of them.
 *
 * Two implementations keep the same contract (test/support/store-contract.ts runs against both):
 * SQLite for one instance, PostgreSQL for several instances sharing one database. Everything here
 * is safe when several processes use the same database at once: dedup keys, claims, leases, seen
 * keys and locks are decided by the database, never by one process's memory.
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
  /**
   * Names this claim. `complete`, `retry`, `deadLetter` and `renewLeases` take it back, and do
   * nothing once another claim has replaced it: a process whose lease expired (it stalled, or lost
   * the database for longer than the lease) can never overwrite the outcome of the job's new holder.
   */
  leaseToken: string;
  /**
   * True when an earlier run of this job started and never recorded an outcome: its process died
   * (kill -9, power cut) or lost its lease mid-run, and the job was taken over. That run's side effect
   * (a Vonage event posted, a WeChat message sent) may or may not have happened. It stays true for
   * every later run of the job, so a handler whose effect is not idempotent checks what the remote
   * side already has before doing it again (e.g. lists the conversation's recent events).
   * (`attempts > 0` alone cannot tell: a run that ended in `retry` recorded its outcome.)
   */
  interrupted: boolean;
}

/** What the outcome calls need: the job and the claim that leased it. */
export type JobLease = Pick<Job, 'id' | 'leaseToken'>;

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

/**
 * Which Vonage conversation belongs to a WeChat user (per-user conversation mode), and how far its
 * set-up got. Creating a conversation, its user and the member takes three remote calls; the row
 * records each result as it comes, so a crash between two calls resumes where it stopped instead of
 * creating a second conversation. The progress is read from which ids are set:
 * conversation created → user created (`userId`) → member joined (`memberId`).
 */
export interface ConversationMapping {
  /** The WeChat user's openid (per account). */
  openid: string;
  conversationId: string;
  /** The Vonage user that stands for the WeChat user; undefined until created. */
  userId: string | undefined;
  /** That user's joined member of the conversation (the `from` of inbound events); undefined until joined. */
  memberId: string | undefined;
  /** Epoch ms. */
  createdAt: number;
  updatedAt: number;
}

/** Progress to record for an openid: `saveConversationMapping` merges it into what is stored. */
export interface ConversationMappingUpdate {
  openid: string;
  conversationId: string;
  userId?: string;
  memberId?: string;
}

/** A file uploaded to WeChat (`media/upload`), remembered so that the same source is not uploaded again. */
export interface UploadedMedia {
  /** The caller's key for the source (e.g. a digest of the URL and the media type). */
  key: string;
  /** WeChat's `media_id`. */
  mediaId: string;
  /** `image`, `voice`, `video` or `thumb`. */
  type: string;
  /** Epoch ms after which the `media_id` must not be used (WeChat keeps temporary media 3 days). */
  expiresAt: number;
}

/** Keys to record as seen (as `markSeen` does) with an enqueue. */
export interface EnqueueOptions {
  /**
   * Recorded in the same transaction as the jobs: both are stored or neither (e.g. a webhook
   * token's `jti`, so that a request whose jobs failed to store can be retried with the same token).
   */
  seenKeys?: Array<{ key: string; expiresAt: number }>;
}

/**
 * A limited number of sends allowed to one recipient until a deadline (a messaging platform's reply
 * window). A scope (whose sends: account + recipient) holds at most one allowance per `kind`; a
 * newer grant of a kind replaces the older one.
 */
export interface SendAllowance {
  scope: string;
  kind: string;
  /** Epoch ms of what opened it; a grant is only taken when it is newer than the stored one. */
  openedAt: number;
  /** Epoch ms after which it allows nothing. */
  closesAt: number;
  remaining: number;
}

/** How long a closed allowance is kept (then pruned), so that "closed since" can still be shown. */
export const SEND_ALLOWANCE_KEPT_AFTER_CLOSE_MS = 24 * 60 * 60 * 1000;

/** What a claim asks for: up to `limit` runnable jobs (of these kinds only, when given), leased for `leaseMs`. */
export interface ClaimOptions {
  limit: number;
  leaseMs: number;
  kinds?: JobKind[];
}

/**
 * The durable job queue: what the webhooks store and the workers run. Each role below is what one
 * kind of caller needs; `Store` is all of them on one database.
 */
export interface JobQueue {
  /**
   * Stores jobs durably, each with its dedup key, in one transaction: when the promise
   * resolves the jobs survive a crash. Results are in the order of `jobs`. `seenKeys` are recorded
   * in that transaction (a key already remembered keeps the later of the two expiries).
   */
  enqueue(jobs: NewJob[], options?: EnqueueOptions): Promise<EnqueueResult[]>;

  /**
   * Leases up to `limit` runnable jobs for `leaseMs`, oldest first. A job is runnable when its
   * `runAt` has come, it is not leased (or its lease has expired), and it is the oldest live job of
   * its order key. So at most one job per order key is ever out at once, across every process on
   * the database, and concurrent claims never hand out the same job.
   */
  claim(options: ClaimOptions): Promise<Job[]>;

  /**
   * Extends the leases still held by these claims to `leaseMs` from now (the worker's heartbeat
   * while handlers run). Resolves with the ids whose lease was extended; a missing id was taken
   * over by another claim (or finished) and is no longer this caller's.
   */
  renewLeases(leases: JobLease[], leaseMs: number): Promise<string[]>;

  /**
   * The job is done: remove it. `complete`, `retry` and `deadLetter` resolve true when they took
   * effect, and do nothing and resolve false for an unknown id or a lease token that another claim
   * has replaced (the job now belongs to that claim).
   */
  complete(lease: JobLease): Promise<boolean>;

  /** Give the job back to run again at `runAt` (epoch ms), recording the error. */
  retry(lease: JobLease, runAt: number, error: string): Promise<boolean>;

  /** Move the job to the dead letters with the reason; it stops blocking its order key. */
  deadLetter(lease: JobLease, reason: string): Promise<boolean>;

  stats(): Promise<QueueStats>;
}

/** The jobs that gave up, for an operator to read, replay or purge. */
export interface DeadLetters {
  /** Dead letters, newest first. */
  listDeadLetters(options?: { limit?: number }): Promise<DeadLetter[]>;

  /** One dead letter by id, or undefined. */
  getDeadLetter(id: string): Promise<DeadLetter | undefined>;

  /** Puts a dead letter back on the queue as a fresh job (attempts reset); false if unknown. */
  replayDeadLetter(id: string): Promise<boolean>;

  /**
   * Deletes a dead letter for good (its job never runs); false if unknown. Touches nothing else:
   * the message's dedup key stays, so a WeChat retry of it is still recognised as a duplicate.
   */
  purgeDeadLetter(id: string): Promise<boolean>;
}

/** Keys remembered until they expire (replay guards: a webhook token's `jti`, a signed query). */
export interface SeenKeys {
  /**
   * Records `key` as seen until `expiresAt` (epoch ms). Resolves true the first time, false while
   * the key is remembered (e.g. a webhook JWT `jti` already used). Expired keys are forgotten.
   */
  markSeen(key: string, expiresAt: number): Promise<boolean>;
}

/** Shared secrets and the locks that let one process at a time refresh them. */
export interface TokensAndLocks {
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
}

/** Which Vonage conversation belongs to which WeChat user (per-user conversation mode). */
export interface ConversationMappings {
  /** The conversation mapping of a WeChat user, or undefined. */
  getConversationMapping(openid: string): Promise<ConversationMapping | undefined>;

  /** The mapping whose conversation is `conversationId` (who an outbound event is for), or undefined. */
  findConversationMapping(conversationId: string): Promise<ConversationMapping | undefined>;

  /**
   * Records set-up progress for `update.openid` and resolves with the row as stored. First writer
   * wins, field by field, so that racing writers (two processes) converge on one conversation: a
   * conversation id, once stored for an openid, is never replaced (a different one in `update` is
   * ignored: the caller must use the returned row); `userId` and `memberId` are filled in when empty
   * and never overwritten. A conversation id already mapped to another openid is refused (throws).
   */
  saveConversationMapping(update: ConversationMappingUpdate): Promise<ConversationMapping>;
}

/** Files already uploaded to WeChat, while their `media_id` lives. */
export interface UploadedMediaCache {
  /** An uploaded media record still valid now (its `expiresAt` is in the future), or undefined. */
  getUploadedMedia(key: string): Promise<UploadedMedia | undefined>;

  /** Stores (or replaces) an uploaded media record. Expired records are pruned. */
  putUploadedMedia(media: UploadedMedia): Promise<void>;
}

/** The reply windows: how many sends each recipient may still get, and until when. */
export interface SendAllowances {
  /**
   * Stores the allowance unless the scope already holds one of the same kind opened at the same time
   * or later (so that a job that runs again cannot grant twice); resolves whether it was stored.
   */
  grantSendAllowance(allowance: SendAllowance): Promise<boolean>;

  /**
   * Uses one send of the scope's allowance that closes first among those open at `now` with sends
   * remaining; resolves false (and changes nothing) when there is none. Atomic across processes.
   */
  takeSendAllowance(scope: string, now: number): Promise<boolean>;

  /** Sets every allowance of the scope to zero remaining (the platform said the window is closed). */
  revokeSendAllowances(scope: string): Promise<void>;

  /** The scope's allowances, open or not, soonest closing first. */
  listSendAllowances(scope: string): Promise<SendAllowance[]>;
}

/** Small JSON values kept until they expire. */
export interface RememberedValues {
  /**
   * Remembers a JSON value under `key` until `expiresAt` (epoch ms), replacing an earlier one (e.g.
   * which outbound event a platform's message id belongs to). Expired values are pruned.
   */
  rememberValue(key: string, value: unknown, expiresAt: number): Promise<void>;

  /** The value remembered under `key`, while it has not expired; undefined otherwise. */
  recallValue(key: string): Promise<unknown>;
}

/** Every role on one database, and the store's own health and lifecycle. */
export interface Store
  extends JobQueue,
    DeadLetters,
    SeenKeys,
    TokensAndLocks,
    ConversationMappings,
    UploadedMediaCache,
    SendAllowances,
    RememberedValues {
  /** Throws when the store cannot serve (for /readyz): e.g. the database is unreachable. */
  ping(): Promise<void>;

  close(): Promise<void>;
}

/**
 * A wake-up between the processes on one database: one publishes a key, every subscriber hears it
 * at once. Best effort (a subscriber that is disconnected misses keys), so whoever waits for
 * something stored still looks at the store now and then; the signal only makes it fast.
 */
export interface StoreSignal {
  /** Tells every listener (this process's included) about `key`. */
  publish(key: string): Promise<void>;
  /** Calls `listener` with every key published; returns a function that removes it. */
  subscribe(listener: (key: string) => void): () => void;
  close(): Promise<void>;
}

/**
 * Whether `key` is remembered, without remembering it: a key recorded "until" a past instant is
 * forgotten at once (`markSeen`'s contract), so the probe leaves nothing behind.
 */
export async function wasSeen(store: SeenKeys, key: string): Promise<boolean> {
  return !(await store.markSeen(key, 0));
}
