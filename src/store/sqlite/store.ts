/**
 * The durable store on SQLite (node:sqlite, no native build): one file, one process.
 *
 * Durability: WAL journal, every commit with `synchronous=NORMAL` (it survives a crash or kill -9 of
 * the process as soon as it returns). `enqueue` resolves only once its commit is also fsynced
 * (survives a power loss): the fsync of the WAL file runs on libuv's thread pool, so the event loop
 * goes on answering requests while the disk works, and one fsync covers every batch committed before
 * it started. Claims, completions and retries are not waited for (a power cut may undo the last few,
 * which only makes a job run again). Without a WAL file (`:memory:`, a file system that refuses WAL)
 * enqueues commit with `synchronous=FULL` instead, in the loop.
 *
 * Group commit (../group-commit.ts): `enqueue` calls made in the same event-loop turn are written in
 * one transaction, and the batches committed while an fsync runs share the next one. Each
 * call still gets exactly its own results, and its jobs are all-or-nothing (a savepoint per call): a
 * call that fails is rejected on its own; a failed commit or fsync rejects every call of the batch.
 *
 * Ordering: the jobs table holds live jobs only, and `is_head` marks the oldest live job of each
 * order key. Only heads are claimable, so a job waiting for its retry blocks the later jobs of its
 * key, and a completed or dead-lettered head hands over to the next job of the key. A partial
 * unique index (`jobs_one_head_per_order_key`) makes the database refuse a second head for a key.
 * `available_at` (run_at while pending, lease_until while leased) lets claim read the runnable heads
 * from one partial index instead of scanning the queue.
 *
 * Leases: every claim writes a fresh `lease_token`; outcome calls and lease renewals match on it,
 * so a process whose lease was taken over changes nothing. `running` marks a claim whose outcome
 * is not recorded yet; a claim that finds it still set knows the run before it was interrupted.
 *
 * Everything runs synchronously on the one connection, so no two operations of this process ever
 * interleave inside a transaction; other processes on the same file are kept out by SQLite's write
 * lock (`BEGIN IMMEDIATE`, with a busy timeout).
 */
import { randomUUID } from 'node:crypto';
import { fsync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { DEFAULT_DEDUP_RETENTION_MS, DEFAULT_PRUNE_INTERVAL_MS, type BackendOptions, type BatchCommit } from '../backend-options';
import { GroupCommit, type PendingEnqueue } from '../group-commit';
import { claimLimit, deadLetterListLimit, parseJobId, prepareJob, type PreparedJob } from '../jobs';
import { checkMappingUpdate } from '../mapping';
import { PruneSchedule, toPruneResult, type PruneResult } from '../pruning';
import {
  fromStoredJson,
  toClaimedJobs,
  toDeadLetter,
  toMapping,
  toQueueStats,
  toSendAllowance,
  toSendAllowanceRow,
  toStoredJson,
  toUploadedMedia,
} from '../rows';
import type {
  ClaimOptions,
  ConversationMapping,
  ConversationMappingUpdate,
  DeadLetter,
  EnqueueOptions,
  EnqueueResult,
  Job,
  JobLease,
  NewJob,
  QueueStats,
  Store,
  StoredToken,
  UploadedMedia,
  SendAllowance,
} from '../store';
import {
  claimedJobRow,
  deadLetterRow,
  int,
  kindDepthRow,
  mappingRow,
  sendAllowanceRow,
  text,
  textOrNull,
  uploadedMediaRow,
  type SqliteRow,
} from './columns';
import { applySqliteMigrations, sqliteMigrations } from './migrations';
import { preparePruneStatements, prepareStatements, type PruneStatement, type Statements } from './statements';
import { openWalFile, WalSync, type SyncFile } from './wal-sync';

const SYNC_FULL = 'FULL';
const SYNC_NORMAL = 'NORMAL';

/** `now` defaults to `Date.now`. */
export interface SqliteStoreOptions extends BackendOptions {
  /** How long to wait for another process's write lock before failing. Default 5 s. */
  busyTimeoutMs?: number;
  /**
   * Hand every leased job back at open. A SQLite file belongs to one bridge process, so leases found
   * at start were held by a process that died (kill -9, power cut): without this its jobs would wait
   * out their lease (a minute) before anyone retried them. Store locks (the WeChat token-refresh
   * lock) found at open are dropped for the same reason. Only the process that runs the workers
   * sets it; tools that open the file beside a running bridge must not.
   */
  releaseLeasesOnOpen?: boolean;
  /** Flushes a file to the disk (the WAL file, before an enqueue resolves). Default `fs.fsync`; tests slow or fail it. */
  syncFile?: SyncFile;
}

/** A small write waiting for this turn's shared transaction (see `flushSmallWrites`). */
interface PendingWrite {
  write: () => unknown;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
}


export class SqliteStore implements Store {
  private readonly db: DatabaseSync;
  private readonly statements: Statements;
  private readonly now: () => number;
  private readonly dedupRetentionMs: number;
  private readonly pruneStatements: PruneStatement[];
  private readonly batches: GroupCommit;
  private readonly pruning: PruneSchedule;
  /** Small writes waiting for their commit: one transaction per turn of the event loop (see `flushSmallWrites`). */
  private pendingWrites: PendingWrite[] = [];
  private smallWritesHandle: NodeJS.Immediate | undefined;
  private closed = false;
  /** Fsyncs the WAL file before an enqueue resolves; without WAL, enqueues commit with FULL instead. */
  private readonly wal: WalSync;

  /** Opens (creating if needed) the database at `path` (`:memory:` allowed) and migrates it. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new DatabaseSync(path);
    try {
      // busy_timeout first: the pragmas and the migration below may wait for another process.
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      db.exec('PRAGMA journal_mode = WAL');
      // NORMAL by default: in WAL mode a commit then survives a crash or kill -9 of the process,
      // only not a power loss. Enqueues (what WeChat is told `success` about) wait for an fsync of
      // the WAL file, or without one commit with FULL; see `writeBatch`. A claim or completion lost
      // to a power cut only runs a job again.
      db.exec(`PRAGMA synchronous = ${SYNC_NORMAL}`);
      applySqliteMigrations(db, sqliteMigrations, (options.now ?? Date.now)());
      if (options.releaseLeasesOnOpen) {
        // `running` stays set: the next claim of such a job reports it `interrupted`.
        db.exec('UPDATE jobs SET lease_until = NULL, available_at = run_at WHERE lease_until IS NOT NULL');
        // Locks found at open were held by the same dead process (the token-refresh lock): drop them.
        db.exec('DELETE FROM locks');
      }
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteStore(db, new WalSync(openWalFile(db, path), options.syncFile ?? fsync), options);
  }

  private constructor(db: DatabaseSync, wal: WalSync, options: SqliteStoreOptions) {
    this.db = db;
    this.wal = wal;
    this.now = options.now ?? Date.now;
    this.dedupRetentionMs = options.dedupRetentionMs ?? DEFAULT_DEDUP_RETENTION_MS;
    this.statements = prepareStatements(db);
    this.pruneStatements = preparePruneStatements(db, this.dedupRetentionMs);
    // No limits: a batch is written synchronously, so two never overlap, and the next one need not
    // wait for the fsync of the one before.
    this.batches = new GroupCommit({
      write: (batch, committed) => this.writeBatch(batch, committed),
      ...(options.onBatchCommit ? { onBatchCommit: options.onBatchCommit } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    const openedAt = this.now();
    this.pruning = new PruneSchedule(options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS, openedAt, options.logger);
    this.pruning.run(() => this.prune(openedAt));
  }

  // ---- jobs ----------------------------------------------------------------------------------

  async enqueue(jobs: NewJob[], options: EnqueueOptions = {}): Promise<EnqueueResult[]> {
    this.assertOpen();
    const prepared = jobs.map((job) => prepareJob(job));
    const seenKeys = (options.seenKeys ?? []).map((seen) => ({ key: seen.key, expiresAt: Math.floor(seen.expiresAt) }));
    return this.batches.add(prepared, seenKeys);
  }

  async claim(options: ClaimOptions): Promise<Job[]> {
    this.assertOpen();
    const limit = claimLimit(options);
    if (limit === 0) return [];
    const now = this.now();
    if (this.statements.hasRunnableHead.get({ now }) === undefined) return [];
    const leaseToken = randomUUID();
    const params = { now, lease_until: now + Math.floor(options.leaseMs), limit, lease_token: leaseToken };
    const rows = options.kinds
      ? this.statements.claimKinds.all({ ...params, kinds: JSON.stringify(options.kinds) })
      : this.statements.claim.all(params);
    return toClaimedJobs(rows.map(claimedJobRow), leaseToken);
  }

  async renewLeases(leases: JobLease[], leaseMs: number): Promise<string[]> {
    this.assertOpen();
    const leaseUntil = this.now() + Math.floor(leaseMs);
    return this.transaction(() =>
      leases
        .filter((lease) => {
          const seq = seqOf(lease.id);
          if (seq === undefined) return false;
          const result = this.statements.renewLease.run({ seq, lease_token: lease.leaseToken, lease_until: leaseUntil });
          return Number(result.changes) > 0;
        })
        .map((lease) => lease.id),
    );
  }

  async complete(lease: JobLease): Promise<boolean> {
    this.assertOpen();
    const seq = seqOf(lease.id);
    if (seq === undefined) return false;
    return this.inTurnTransaction(() => this.removeJob(seq, lease.leaseToken) !== undefined);
  }

  async retry(lease: JobLease, runAt: number, error: string): Promise<boolean> {
    this.assertOpen();
    const seq = seqOf(lease.id);
    if (seq === undefined) return false;
    return this.changesInTurn(this.statements.retry, { seq, lease_token: lease.leaseToken, run_at: Math.floor(runAt), error });
  }

  async deadLetter(lease: JobLease, reason: string): Promise<boolean> {
    this.assertOpen();
    const seq = seqOf(lease.id);
    if (seq === undefined) return false;
    const deadAt = this.now();
    return this.inTurnTransaction(() => {
      const row = this.removeJob(seq, lease.leaseToken);
      if (!row) return false;
      this.statements.insertDeadLetter.run({
        id: seq,
        kind: text(row.kind),
        order_key: text(row.order_key),
        payload: text(row.payload),
        attempts: int(row.attempts),
        created_at: int(row.created_at),
        dead_at: deadAt,
        reason,
        last_error: textOrNull(row.last_error),
      });
      return true;
    });
  }

  async listDeadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    this.assertOpen();
    return this.statements.listDeadLetters.all(deadLetterListLimit(options)).map((row) => toDeadLetter(deadLetterRow(row)));
  }

  async getDeadLetter(id: string): Promise<DeadLetter | undefined> {
    this.assertOpen();
    const seq = seqOf(id);
    if (seq === undefined) return undefined;
    const row = this.statements.getDeadLetter.get(seq);
    return row ? toDeadLetter(deadLetterRow(row)) : undefined;
  }

  async purgeDeadLetter(id: string): Promise<boolean> {
    this.assertOpen();
    const seq = seqOf(id);
    if (seq === undefined) return false;
    return this.statements.deleteDeadLetter.all(seq).length > 0;
  }

  async replayDeadLetter(id: string): Promise<boolean> {
    this.assertOpen();
    const seq = seqOf(id);
    if (seq === undefined) return false;
    const now = this.now();
    return this.transaction(() => {
      const row = this.statements.deleteDeadLetter.all(seq)[0];
      if (!row) return false;
      this.statements.insertJob.run({
        kind: text(row.kind),
        order_key: text(row.order_key),
        payload: text(row.payload),
        created_at: now,
        run_at: now,
      });
      return true;
    });
  }

  async stats(): Promise<QueueStats> {
    this.assertOpen();
    const now = this.now();
    const kinds = this.statements.depthByKind.all().map(kindDepthRow);
    return toQueueStats(now, kinds, int(this.statements.countDeadLetters.get()?.count ?? 0));
  }

  // ---- seen keys, tokens, locks ------------------------------------------------------------

  async markSeen(key: string, expiresAt: number): Promise<boolean> {
    this.assertOpen();
    const now = this.now();
    // A key recorded until the past is forgotten at once: only whether it is remembered now counts,
    // and a read answers that without a write transaction (the replay guard asks it on every push).
    if (expiresAt <= now) return this.statements.isSeen.get({ key, now }) === undefined;
    return this.changesInTurn(this.statements.markSeen, { key, expires_at: Math.floor(expiresAt), now });
  }

  /** The stored token as it is, expired or not: the caller compares `expiresAt` with its clock. */
  async getToken(name: string): Promise<StoredToken | undefined> {
    this.assertOpen();
    const row = this.statements.getToken.get(name);
    return row ? { value: text(row.value), expiresAt: int(row.expires_at) } : undefined;
  }

  async putToken(name: string, token: StoredToken): Promise<void> {
    this.assertOpen();
    const params = { name, value: token.value, expires_at: Math.floor(token.expiresAt) };
    await this.inTurnTransaction(() => this.statements.putToken.run(params));
  }

  /** Taking a lock you already hold succeeds and extends it to `ttlMs` from now. */
  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    const now = this.now();
    const result = this.statements.tryLock.run({ name, owner, expires_at: now + Math.floor(ttlMs), now });
    return Number(result.changes) > 0;
  }

  async unlock(name: string, owner: string): Promise<void> {
    this.assertOpen();
    this.statements.unlock.run(name, owner);
  }

  // ---- conversation mappings, uploaded media ------------------------------------------------

  async getConversationMapping(openid: string): Promise<ConversationMapping | undefined> {
    this.assertOpen();
    const row = this.statements.getMapping.get(openid);
    return row ? toMapping(mappingRow(row)) : undefined;
  }

  async findConversationMapping(conversationId: string): Promise<ConversationMapping | undefined> {
    this.assertOpen();
    const row = this.statements.findMapping.get(conversationId);
    return row ? toMapping(mappingRow(row)) : undefined;
  }

  async saveConversationMapping(update: ConversationMappingUpdate): Promise<ConversationMapping> {
    this.assertOpen();
    checkMappingUpdate(update);
    const row = this.statements.saveMapping.get({
      openid: update.openid,
      conversation_id: update.conversationId,
      user_id: update.userId ?? null,
      member_id: update.memberId ?? null,
      now: this.now(),
    });
    if (!row) throw new Error('saving the conversation mapping returned no row');
    return toMapping(mappingRow(row));
  }

  async getUploadedMedia(key: string): Promise<UploadedMedia | undefined> {
    this.assertOpen();
    const row = this.statements.getUploadedMedia.get(key, this.now());
    return row ? toUploadedMedia(uploadedMediaRow(row)) : undefined;
  }

  async putUploadedMedia(media: UploadedMedia): Promise<void> {
    this.assertOpen();
    this.statements.putUploadedMedia.run({
      key: media.key,
      media_id: media.mediaId,
      type: media.type,
      expires_at: Math.floor(media.expiresAt),
    });
  }

  // ---- send allowances and remembered values -----------------------------------------------

  async grantSendAllowance(allowance: SendAllowance): Promise<boolean> {
    this.assertOpen();
    return this.changesInTurn(this.statements.grantAllowance, { ...toSendAllowanceRow(allowance) });
  }

  async takeSendAllowance(scope: string, now: number): Promise<boolean> {
    this.assertOpen();
    return this.changesInTurn(this.statements.takeAllowance, { scope, now: Math.floor(now) });
  }

  async revokeSendAllowances(scope: string): Promise<void> {
    this.assertOpen();
    this.statements.revokeAllowances.run(scope);
  }

  async listSendAllowances(scope: string): Promise<SendAllowance[]> {
    this.assertOpen();
    return this.statements.listAllowances.all(scope).map((row) => toSendAllowance(sendAllowanceRow(row)));
  }

  async rememberValue(key: string, value: unknown, expiresAt: number): Promise<void> {
    this.assertOpen();
    this.statements.rememberValue.run({ key, value: toStoredJson(value), expires_at: Math.floor(expiresAt) });
  }

  async recallValue(key: string): Promise<unknown> {
    this.assertOpen();
    const row = this.statements.recallValue.get(key, this.now());
    return row ? fromStoredJson(text(row.value)) : undefined;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async ping(): Promise<void> {
    this.assertOpen();
    this.statements.ping.get();
  }

  /** Writes any pending enqueue batch, then closes the database. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.batches.flush();
    this.flushSmallWrites();
    this.closed = true;
    // The last batches resolve once fsynced; the file descriptor stays open until then.
    await this.batches.drain();
    await this.wal.close();
    this.db.close();
  }

  /** Prunes every table of expiring rows now (normally done after enqueues, at a low rate). */
  async pruneExpired(): Promise<PruneResult> {
    this.assertOpen();
    return this.prune(this.now());
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * `write` in this turn's shared transaction: the small writes of a turn of the event loop commit
   * together (job outcomes, send allowances granted and taken, seen marks, tokens and delivery
   * marks). Under load the worker finishes and starts dozens of jobs per turn, and one commit each
   * was a tenth of the bridge's CPU time (with Vonage down every job fails once and leaves a mark;
   * every send to WeChat marks its attempt first). Resolves once committed, as a commit of its own
   * would: durable against a crash of the process. The writes of a turn commit in the order they
   * were made, and a caller that awaits one before its next write keeps its own order.
   */
  private inTurnTransaction<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pendingWrites.push({ write, resolve: resolve as (result: unknown) => void, reject });
      this.smallWritesHandle ??= setImmediate(() => this.flushSmallWrites());
    });
  }

  /** `statement` run with `params` in this turn's shared transaction; true when it changed a row. */
  private changesInTurn(statement: StatementSync, params: Record<string, SQLInputValue>): Promise<boolean> {
    return this.inTurnTransaction(() => Number(statement.run(params).changes) > 0);
  }

  private flushSmallWrites(): void {
    if (this.smallWritesHandle) clearImmediate(this.smallWritesHandle);
    this.smallWritesHandle = undefined;
    const batch = this.pendingWrites;
    this.pendingWrites = [];
    if (batch.length === 0) return;
    let results: unknown[];
    try {
      results = this.transaction(() => batch.map((call) => call.write()));
    } catch {
      // One failing write must not fail the others: each on its own, with its own outcome.
      for (const call of batch) {
        try {
          call.resolve(this.transaction(call.write));
        } catch (error) {
          call.reject(error);
        }
      }
      return;
    }
    batch.forEach((call, index) => call.resolve(results[index]));
  }

  /**
   * Writes a batch in one transaction, synchronously, with a savepoint per call: a call that fails
   * is rejected on its own; a failed commit or fsync rejects every call of the batch. Resolves once
   * the committed calls are fsynced too.
   */
  private writeBatch(batch: PendingEnqueue[], committed: (tally: BatchCommit) => void): Promise<void> {
    const now = this.now();
    const expiredBefore = now - this.dedupRetentionMs;
    const outcomes: CallOutcome[] = [];
    try {
      // Without a WAL file to fsync afterwards, this commit itself is fsynced.
      if (!this.wal.hasWalFile) this.db.exec(`PRAGMA synchronous = ${SYNC_FULL}`);
      this.db.exec('BEGIN IMMEDIATE');
      if (!this.writeCallsAtOnce(batch, now, expiredBefore, outcomes)) {
        // A call failed: write the batch again, a savepoint per call, so that only that call fails.
        this.db.exec('ROLLBACK');
        outcomes.length = 0;
        this.db.exec('BEGIN IMMEDIATE');
        for (const call of batch) {
          this.db.exec('SAVEPOINT enqueue_call');
          try {
            outcomes.push({ ok: true, results: this.writeCall(call, now, expiredBefore) });
            this.db.exec('RELEASE enqueue_call');
          } catch (error) {
            this.db.exec('ROLLBACK TO enqueue_call');
            this.db.exec('RELEASE enqueue_call');
            outcomes.push({ ok: false, error });
          }
        }
      }
      this.db.exec('COMMIT');
    } catch (error) {
      this.rollbackQuietly();
      if (!this.wal.hasWalFile) this.db.exec(`PRAGMA synchronous = ${SYNC_NORMAL}`);
      // Nothing of this batch is known to be stored: acknowledge none of it.
      batch.forEach((call, index) => {
        const own = outcomes[index];
        call.reject(own && !own.ok ? own.error : error);
      });
      return Promise.resolve();
    }

    if (!this.wal.hasWalFile) this.db.exec(`PRAGMA synchronous = ${SYNC_NORMAL}`);
    let jobs = 0;
    let stored = 0;
    batch.forEach((call, index) => {
      const outcome = outcomes[index]!;
      if (outcome.ok) {
        jobs += call.jobs.length;
        stored += outcome.results.filter((result) => result.outcome === 'stored').length;
      } else {
        call.reject(outcome.error);
      }
    });
    // A call's results are final now; it resolves once they are on the disk too.
    const durable = new Promise<void>((resolve) => {
      this.wal.whenDurable((error) => {
        batch.forEach((call, index) => {
          const outcome = outcomes[index]!;
          if (!outcome.ok) return;
          if (error === undefined) call.resolve(outcome.results);
          else call.reject(error);
        });
        resolve();
      });
    });
    committed({ calls: batch.length, jobs, stored });
    this.pruning.runIfDue(now, () => this.prune(now));
    return durable;
  }

  /**
   * Every call of a batch in the open transaction, with no savepoints (two statements per call
   * saved, on every push): true when all of them were written, false at the first that failed.
   */
  private writeCallsAtOnce(batch: PendingEnqueue[], now: number, expiredBefore: number, outcomes: CallOutcome[]): boolean {
    try {
      for (const call of batch) outcomes.push({ ok: true, results: this.writeCall(call, now, expiredBefore) });
      return true;
    } catch {
      return false;
    }
  }

  /** One call's jobs and seen keys. */
  private writeCall(call: PendingEnqueue, now: number, expiredBefore: number): EnqueueResult[] {
    const results = call.jobs.map((job) => this.insertNewJob(job, now, expiredBefore));
    for (const seen of call.seenKeys) this.statements.recordSeen.run({ key: seen.key, expires_at: seen.expiresAt });
    return results;
  }

  private insertNewJob(job: PreparedJob, now: number, expiredBefore: number): EnqueueResult {
    if (job.dedupKey !== undefined) {
      const claimed = this.statements.claimDedupKey.run({ key: job.dedupKey, now, expired_before: expiredBefore });
      if (Number(claimed.changes) === 0) return { outcome: 'duplicate' };
    }
    this.statements.insertJob.run({
      kind: job.kind,
      order_key: job.orderKey,
      payload: job.payloadJson,
      created_at: now,
      run_at: job.runAt ?? now,
    });
    return { outcome: 'stored' };
  }

  /**
   * Deletes a live job still held by `leaseToken` and, if it was the head of its key, makes the
   * next job of the key the head.
   */
  private removeJob(seq: bigint, leaseToken: string): SqliteRow | undefined {
    const row = this.statements.deleteJob.all({ seq, lease_token: leaseToken })[0];
    if (row && int(row.is_head) === 1) this.statements.promoteHead.run(text(row.order_key));
    return row;
  }

  private prune(now: number): PruneResult {
    const deleted = new Map<string, number>();
    for (const { table, keptAfterMs, statement } of this.pruneStatements) {
      deleted.set(table, Number(statement.run(now - keptAfterMs).changes));
    }
    return toPruneResult(deleted);
  }

  private transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.rollbackQuietly();
      throw error;
    }
  }

  private rollbackQuietly(): void {
    try {
      // isTransaction is undefined before Node 22.16: then try, a ROLLBACK outside a transaction only throws.
      if (this.db.isTransaction !== false) this.db.exec('ROLLBACK');
    } catch {
      // The connection already rolled back (e.g. after an I/O error); nothing left to undo.
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the store is closed');
  }
}


/** How one enqueue call of a batch was written. */
type CallOutcome = { ok: true; results: EnqueueResult[] } | { ok: false; error: unknown };

/** The row's sequence number a job id names, or undefined when the id names no job. */
function seqOf(id: string): bigint | undefined {
  const seq = parseJobId(id);
  return seq === undefined ? undefined : BigInt(seq);
}
