/**
 * The durable store on PostgreSQL (`pg`): several bridge instances share one database and its work.
 *
 * Sharing: a claim takes runnable heads with `FOR UPDATE SKIP LOCKED`, so concurrent claims from
 * any number of instances never hand out the same job and never wait for each other; per-key order
 * comes from `is_head`, kept right across instances by per-key advisory locks (see
 * migrations.ts). Leases are not released at open (other instances are alive and may hold
 * them): a crashed instance's jobs are taken over when their lease runs out, and its late outcome
 * calls, if it was only stalled, are no-ops because the lease token changed.
 *
 * Durability: `synchronous_commit` stays on; `enqueue` resolves only after its commit returned.
 *
 * Group commit (../group-commit.ts): enqueue calls are gathered while earlier batches are in flight and written by one
 * `bridge_enqueue` call (one statement, one commit, one WAL flush), at most `maxConcurrentBatches`
 * at a time. Each call still gets exactly its own results. A batch that fails rejects every call in
 * it; nothing of it was acknowledged, and a retried message finds its dedup key if the commit did
 * land after all.
 *
 * Losing the database: pool errors on idle connections are logged, never thrown; every query has a
 * client-side read timeout and a server-side statement timeout, and taking a connection has a
 * connect timeout, so a call fails within a few seconds instead of hanging (WeChat's 5-second
 * budget); `enqueue` additionally rejects after `enqueueTimeoutMs`. `ping()` fails while the
 * database is unreachable. The pool opens new connections when the database is back: nothing needs
 * a restart.
 *
 * Clock: by default the database's (`bridge_now_ms()`), so leases mean the same on every instance;
 * tests pass `now` to move time themselves.
 */
import { randomUUID } from 'node:crypto';
import { Client, Pool, type PoolConfig } from 'pg';
import { DEFAULT_DEDUP_RETENTION_MS, DEFAULT_PRUNE_INTERVAL_MS, type BackendOptions, type BatchCommit } from '../backend-options';
import { describeError, errorWithCode, messageOf } from '../error-details';
import { GroupCommit, type PendingEnqueue } from '../group-commit';
import { claimLimit, deadLetterListLimit, parseJobId, prepareJob } from '../jobs';
import { checkMappingUpdate } from '../mapping';
import { keptAfterMs, PruneSchedule, toPruneResult, type PruneResult } from '../pruning';
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
  type ClaimedJobRow,
  type DeadLetterRow,
  type KindDepthRow,
  type MappingRow,
  type SendAllowanceRow,
  type UploadedMediaRow,
} from '../rows';
import { isStorableText, toStorableText } from '../storable-text';
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
import { applyPostgresMigrations, postgresMigrations } from './migrations';
import { PRUNE_STATEMENTS, SQL } from './statements';

/** PostgreSQL text cannot hold NUL characters or unpaired surrogates: keys with them are refused. */
const STORABLE = { refuseUnstorableText: true } as const;

/** `now` defaults to the database's clock. */
export interface PostgresStoreOptions extends BackendOptions {
  /** Connections in this instance's pool. Default 10 (instances × this must stay under `max_connections`). */
  poolSize?: number;
  /** Taking a pooled connection (including connecting) fails after this. Default 2 s. */
  connectionTimeoutMs?: number;
  /** A statement is cancelled by the server after this, and abandoned by the client shortly after. Default 3 s. */
  statementTimeoutMs?: number;
  /** An enqueue call not committed after this is rejected (the caller answers 503). Default 3.5 s. */
  enqueueTimeoutMs?: number;
  /** Enqueue batches in flight at once. Default 4. */
  maxConcurrentBatches?: number;
  /** Jobs in one enqueue batch at most. Default 500. */
  maxBatchJobs?: number;
  /** Shown in pg_stat_activity. Default `wechat-conversation-bridge`. */
  applicationName?: string;
  /** How long the schema migration at open may take (waiting for another instance's included). Default 5 min. */
  migrationTimeoutMs?: number;
}

export class PostgresStore implements Store {
  private readonly pool: Pool;
  private readonly now: (() => number) | undefined;
  private readonly dedupRetentionMs: number;
  private readonly logger: PostgresStoreOptions['logger'];
  private readonly batches: GroupCommit;
  private readonly pruning: PruneSchedule;
  private closed = false;

  /**
   * Connects to `connectionString` (a `postgres://` or `postgresql://` URL) and brings the schema up
   * to date (safe when several instances start at once). Errors never contain the URL.
   */
  static async open(connectionString: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const statementTimeoutMs = options.statementTimeoutMs ?? 3_000;
    const config: PoolConfig = {
      connectionString,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 2_000,
      idleTimeoutMillis: 30_000,
      statement_timeout: statementTimeoutMs,
      // The client gives up a little after the server would have: this catches a server or network
      // that went silent (no answer at all), where the server-side timeout cannot help.
      query_timeout: statementTimeoutMs + 500,
      idle_in_transaction_session_timeout: 10_000,
      keepAlive: true,
      application_name: options.applicationName ?? 'wechat-conversation-bridge',
    };
    // Migrations run on a connection of their own, without the pool's short timeouts: a migration
    // may take a while, and another instance's migration may hold the lock meanwhile.
    const migrator = new Client({
      connectionString,
      connectionTimeoutMillis: config.connectionTimeoutMillis,
      statement_timeout: options.migrationTimeoutMs ?? 300_000,
      keepAlive: true,
      application_name: config.application_name,
    });
    migrator.on('error', () => undefined); // a break surfaces as the failing query's error
    try {
      await migrator.connect();
      await applyPostgresMigrations(migrator, postgresMigrations);
    } catch (error) {
      throw describeConnectionError(error);
    } finally {
      await migrator.end().catch(() => undefined);
    }
    return new PostgresStore(new Pool(config), options);
  }

  private constructor(pool: Pool, options: PostgresStoreOptions) {
    this.pool = pool;
    this.now = options.now;
    this.dedupRetentionMs = options.dedupRetentionMs ?? DEFAULT_DEDUP_RETENTION_MS;
    this.logger = options.logger;
    this.batches = new GroupCommit({
      write: (batch, committed) => this.writeBatch(batch, committed),
      maxConcurrentBatches: options.maxConcurrentBatches ?? 4,
      maxBatchJobs: options.maxBatchJobs ?? 500,
      timeoutMs: options.enqueueTimeoutMs ?? 3_500,
      ...(options.onBatchCommit ? { onBatchCommit: options.onBatchCommit } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    // Pruning is paced on this process's clock, not the database's: it only needs to be rare.
    this.pruning = new PruneSchedule(options.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS, Date.now(), options.logger);
    // An idle connection that breaks (database restarted, network cut) emits 'error' on the pool;
    // without a listener that would crash the process. The pool drops the connection and opens a
    // new one on the next query.
    this.pool.on('error', (error) => {
      this.logger?.warn({ error: describeError(error) }, 'idle PostgreSQL connection lost; it will be replaced');
    });
  }

  // ---- jobs ----------------------------------------------------------------------------------

  async enqueue(jobs: NewJob[], options: EnqueueOptions = {}): Promise<EnqueueResult[]> {
    this.assertOpen();
    const prepared = jobs.map((job) => prepareJob(job, STORABLE));
    const seenKeys = (options.seenKeys ?? []).map((seen) => ({ key: toStorableText(seen.key), expiresAt: Math.floor(seen.expiresAt) }));
    return this.batches.add(prepared, seenKeys);
  }

  async claim(options: ClaimOptions): Promise<Job[]> {
    this.assertOpen();
    const limit = claimLimit(options);
    if (limit === 0) return [];
    const leaseToken = randomUUID();
    const { rows } = await this.pool.query<ClaimedJobRow>(SQL.claim, [
      this.clock(),
      limit,
      Math.floor(options.leaseMs),
      options.kinds ?? null,
      leaseToken,
    ]);
    return toClaimedJobs(rows, leaseToken);
  }

  async renewLeases(leases: JobLease[], leaseMs: number): Promise<string[]> {
    this.assertOpen();
    const valid = leases.filter((lease) => parseJobId(lease.id) !== undefined);
    if (valid.length === 0) return [];
    const { rows } = await this.pool.query<{ seq: string }>(SQL.renewLeases, [
      valid.map((lease) => lease.id),
      valid.map((lease) => lease.leaseToken),
      this.clock(),
      Math.floor(leaseMs),
    ]);
    const renewed = new Set(rows.map((row) => row.seq));
    return valid.filter((lease) => renewed.has(lease.id)).map((lease) => lease.id);
  }

  async complete(lease: JobLease): Promise<boolean> {
    return this.finish(lease, null);
  }

  async retry(lease: JobLease, runAt: number, error: string): Promise<boolean> {
    this.assertOpen();
    if (parseJobId(lease.id) === undefined) return false;
    const result = await this.pool.query(SQL.retry, [lease.id, lease.leaseToken, Math.floor(runAt), toStorableText(error)]);
    return (result.rowCount ?? 0) > 0;
  }

  async deadLetter(lease: JobLease, reason: string): Promise<boolean> {
    return this.finish(lease, toStorableText(reason));
  }

  async listDeadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    this.assertOpen();
    const { rows } = await this.pool.query<DeadLetterRow>(SQL.listDeadLetters, [deadLetterListLimit(options)]);
    return rows.map(toDeadLetter);
  }

  async getDeadLetter(id: string): Promise<DeadLetter | undefined> {
    this.assertOpen();
    if (parseJobId(id) === undefined) return undefined;
    const { rows } = await this.pool.query<DeadLetterRow>(SQL.getDeadLetter, [id]);
    return rows[0] ? toDeadLetter(rows[0]) : undefined;
  }

  async purgeDeadLetter(id: string): Promise<boolean> {
    this.assertOpen();
    if (parseJobId(id) === undefined) return false;
    const result = await this.pool.query(SQL.purgeDeadLetter, [id]);
    return (result.rowCount ?? 0) > 0;
  }

  async replayDeadLetter(id: string): Promise<boolean> {
    this.assertOpen();
    if (parseJobId(id) === undefined) return false;
    const { rows } = await this.pool.query<{ replayed: boolean }>(SQL.replayDeadLetter, [id, this.clock()]);
    return rows[0]?.replayed === true;
  }

  async stats(): Promise<QueueStats> {
    this.assertOpen();
    const { rows } = await this.pool.query<{ now: number; dead_letters: number; kinds: KindDepthRow[] }>(SQL.stats, [this.clock()]);
    const row = rows[0]!;
    const kinds = row.kinds.map((each) => ({ kind: each.kind, depth: Number(each.depth), oldest: Number(each.oldest) }));
    return toQueueStats(row.now, kinds, row.dead_letters);
  }

  // ---- seen keys, tokens, locks ------------------------------------------------------------

  async markSeen(key: string, expiresAt: number): Promise<boolean> {
    this.assertOpen();
    const { rows } = await this.pool.query<{ fresh: boolean }>(SQL.markSeen, [toStorableText(key), Math.floor(expiresAt), this.clock()]);
    return rows[0]?.fresh === true;
  }

  /** The stored token as it is, expired or not: the caller compares `expiresAt` with its clock. */
  async getToken(name: string): Promise<StoredToken | undefined> {
    this.assertOpen();
    const { rows } = await this.pool.query<{ value: string; expires_at: number }>(SQL.getToken, [name]);
    const row = rows[0];
    return row ? { value: row.value, expiresAt: row.expires_at } : undefined;
  }

  async putToken(name: string, token: StoredToken): Promise<void> {
    this.assertOpen();
    await this.pool.query(SQL.putToken, [name, token.value, Math.floor(token.expiresAt)]);
  }

  /** Taking a lock you already hold succeeds and extends it to `ttlMs` from now. */
  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    const result = await this.pool.query(SQL.tryLock, [name, owner, Math.floor(ttlMs), this.clock()]);
    return (result.rowCount ?? 0) > 0;
  }

  async unlock(name: string, owner: string): Promise<void> {
    this.assertOpen();
    await this.pool.query(SQL.unlock, [name, owner]);
  }

  // ---- conversation mappings, uploaded media ------------------------------------------------

  async getConversationMapping(openid: string): Promise<ConversationMapping | undefined> {
    this.assertOpen();
    if (!isStorableText(openid)) return undefined;
    const { rows } = await this.pool.query<MappingRow>(SQL.getMapping, [openid]);
    return rows[0] ? toMapping(rows[0]) : undefined;
  }

  async findConversationMapping(conversationId: string): Promise<ConversationMapping | undefined> {
    this.assertOpen();
    if (!isStorableText(conversationId)) return undefined;
    const { rows } = await this.pool.query<MappingRow>(SQL.findMapping, [conversationId]);
    return rows[0] ? toMapping(rows[0]) : undefined;
  }

  async saveConversationMapping(update: ConversationMappingUpdate): Promise<ConversationMapping> {
    this.assertOpen();
    checkMappingUpdate(update, STORABLE);
    const { rows } = await this.pool.query<MappingRow>(SQL.saveMapping, [
      update.openid,
      update.conversationId,
      update.userId ?? null,
      update.memberId ?? null,
      this.clock(),
    ]);
    if (!rows[0]) throw new Error('saving the conversation mapping returned no row');
    return toMapping(rows[0]);
  }

  async getUploadedMedia(key: string): Promise<UploadedMedia | undefined> {
    this.assertOpen();
    if (!isStorableText(key)) return undefined;
    const { rows } = await this.pool.query<UploadedMediaRow>(SQL.getUploadedMedia, [key, this.clock()]);
    return rows[0] ? toUploadedMedia(rows[0]) : undefined;
  }

  async putUploadedMedia(media: UploadedMedia): Promise<void> {
    this.assertOpen();
    await this.pool.query(SQL.putUploadedMedia, [toStorableText(media.key), toStorableText(media.mediaId), toStorableText(media.type), Math.floor(media.expiresAt)]);
  }

  // ---- send allowances and remembered values -----------------------------------------------

  async grantSendAllowance(allowance: SendAllowance): Promise<boolean> {
    this.assertOpen();
    const row = toSendAllowanceRow(allowance);
    const result = await this.pool.query(SQL.grantAllowance, [
      toStorableText(row.scope),
      toStorableText(row.kind),
      row.opened_at,
      row.closes_at,
      row.remaining,
    ]);
    return (result.rowCount ?? 0) > 0;
  }

  async takeSendAllowance(scope: string, now: number): Promise<boolean> {
    this.assertOpen();
    if (!isStorableText(scope)) return false;
    const result = await this.pool.query(SQL.takeAllowance, [scope, Math.floor(now)]);
    return (result.rowCount ?? 0) > 0;
  }

  async revokeSendAllowances(scope: string): Promise<void> {
    this.assertOpen();
    if (!isStorableText(scope)) return;
    await this.pool.query(SQL.revokeAllowances, [scope]);
  }

  async listSendAllowances(scope: string): Promise<SendAllowance[]> {
    this.assertOpen();
    if (!isStorableText(scope)) return [];
    const { rows } = await this.pool.query<SendAllowanceRow>(SQL.listAllowances, [scope]);
    return rows.map(toSendAllowance);
  }

  async rememberValue(key: string, value: unknown, expiresAt: number): Promise<void> {
    this.assertOpen();
    await this.pool.query(SQL.rememberValue, [toStorableText(key), toStorableText(toStoredJson(value)), Math.floor(expiresAt)]);
  }

  async recallValue(key: string): Promise<unknown> {
    this.assertOpen();
    if (!isStorableText(key)) return undefined;
    const { rows } = await this.pool.query<{ value: string }>(SQL.recallValue, [key, this.clock()]);
    return rows[0] ? fromStoredJson(rows[0].value) : undefined;
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  async ping(): Promise<void> {
    this.assertOpen();
    await this.pool.query(SQL.ping);
  }

  /** Writes any pending enqueue batch, waits for the batches in flight, then closes the pool. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.batches.drain();
    this.closed = true;
    await this.pool.end();
  }

  /** Prunes every table of expiring rows now (normally done after enqueues, at a low rate). */
  async pruneExpired(): Promise<PruneResult> {
    this.assertOpen();
    const now = this.clock();
    const deleted = new Map<string, number>();
    for (const { rows, sql } of PRUNE_STATEMENTS) {
      const result = await this.pool.query(sql, [now, keptAfterMs(rows, this.dedupRetentionMs)]);
      deleted.set(rows.table, result.rowCount ?? 0);
    }
    return toPruneResult(deleted);
  }

  // ---- internals -----------------------------------------------------------------------------

  private clock(): number | null {
    return this.now ? Math.floor(this.now()) : null;
  }

  /** Writes a batch with one `bridge_enqueue` call: one statement, one commit, all or nothing. */
  private async writeBatch(batch: PendingEnqueue[], committed: (tally: BatchCommit) => void): Promise<void> {
    const jobs = batch.flatMap((call) => call.jobs);
    // One row per key (an upsert may not touch a row twice); the latest expiry wins.
    const seen = new Map<string, number>();
    for (const { key, expiresAt } of batch.flatMap((call) => call.seenKeys)) seen.set(key, Math.max(expiresAt, seen.get(key) ?? expiresAt));
    let stored: boolean[];
    try {
      const { rows } = await this.pool.query<{ stored: boolean[] }>(SQL.enqueue, [
        jobs.map((job) => job.kind),
        jobs.map((job) => job.orderKey),
        jobs.map((job) => job.payloadJson),
        jobs.map((job) => job.dedupKey ?? null),
        jobs.map((job) => job.runAt ?? null),
        this.clock(),
        this.dedupRetentionMs,
        [...seen.keys()],
        [...seen.values()],
      ]);
      stored = rows[0]?.stored ?? [];
      if (stored.length !== jobs.length) throw new Error('bridge_enqueue returned an unexpected result');
    } catch (error) {
      // Nothing of this batch is known to be stored: acknowledge none of it.
      for (const call of batch) call.reject(error);
      return;
    }

    let offset = 0;
    let storedCount = 0;
    for (const call of batch) {
      const results = call.jobs.map((_, index): EnqueueResult => {
        const isStored = stored[offset + index] === true;
        if (isStored) storedCount += 1;
        return { outcome: isStored ? 'stored' : 'duplicate' };
      });
      offset += call.jobs.length;
      call.resolve(results);
    }
    committed({ calls: batch.length, jobs: jobs.length, stored: storedCount });
    this.pruning.runIfDue(Date.now(), () => this.pruneExpired());
  }

  private async finish(lease: JobLease, deadReason: string | null): Promise<boolean> {
    this.assertOpen();
    if (parseJobId(lease.id) === undefined) return false;
    const { rows } = await this.pool.query<{ done: boolean }>(SQL.finish, [lease.id, lease.leaseToken, deadReason, this.clock()]);
    return rows[0]?.done === true;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the store is closed');
  }
}

/**
 * The error to throw from `open`: pg's own message (it names host and port at most, never the
 * password), without the URL that some parse errors carry in extra fields.
 */
function describeConnectionError(error: unknown): Error {
  return errorWithCode(`PostgreSQL: ${messageOf(error)}`, error);
}
