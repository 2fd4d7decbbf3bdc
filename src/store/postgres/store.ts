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
 * Group commit: enqueue calls are gathered while earlier batches are in flight and written by one
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
import { EXPIRING_ROWS, keptAfterMs, PRUNE_BATCH, PruneSchedule, toPruneResult, type PruneResult } from '../pruning';
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

/** `$n::bigint` for the clock: the test clock's value, or NULL for the database's own. */
const NOW = (n: number) => `coalesce($${n}::bigint, bridge_now_ms())`;

const SQL = {
  // The seen keys are written by the same statement, hence in the same transaction as the jobs
  // (a data-modifying WITH always runs to completion, read or not).
  enqueue: `
    WITH seen AS (
      INSERT INTO seen_keys AS s (key, expires_at)
      SELECT * FROM unnest($8::text[], $9::bigint[])
      ON CONFLICT (key) DO UPDATE SET expires_at = greatest(s.expires_at, excluded.expires_at)
    )
    SELECT bridge_enqueue($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], ${NOW(6)}, ${NOW(6)} - $7::bigint) AS stored`,
  claim: `
    WITH picked AS (
      SELECT seq FROM jobs
      WHERE is_head AND available_at <= ${NOW(1)} AND ($4::text[] IS NULL OR kind = ANY ($4::text[]))
      ORDER BY available_at, seq
      LIMIT $2
      FOR UPDATE SKIP LOCKED)
    UPDATE jobs AS j
    SET attempts = j.attempts + 1, lease_until = ${NOW(1)} + $3::bigint, available_at = ${NOW(1)} + $3::bigint,
        lease_token = $5, interrupted = j.interrupted OR j.running, running = true
    FROM picked WHERE j.seq = picked.seq
    RETURNING j.seq::text AS seq, j.kind, j.order_key, j.payload, j.attempts, j.created_at::float8 AS created_at,
              j.last_error, j.interrupted`,
  renewLeases: `
    UPDATE jobs AS j SET lease_until = ${NOW(3)} + $4::bigint, available_at = ${NOW(3)} + $4::bigint
    FROM unnest($1::bigint[], $2::text[]) AS l(seq, lease_token)
    WHERE j.seq = l.seq AND j.lease_token = l.lease_token AND j.running
    RETURNING j.seq::text AS seq`,
  finish: `SELECT bridge_finish_job($1::bigint, $2, $3, ${NOW(4)}) AS done`,
  retry: `
    UPDATE jobs SET run_at = $3, available_at = $3, lease_until = NULL, last_error = $4, running = false
    WHERE seq = $1 AND lease_token = $2`,
  listDeadLetters: `
    SELECT id::text AS id, kind, order_key, payload, attempts, created_at::float8 AS created_at,
           dead_at::float8 AS dead_at, reason
    FROM dead_letters ORDER BY dead_at DESC, id DESC LIMIT $1`,
  getDeadLetter: `
    SELECT id::text AS id, kind, order_key, payload, attempts, created_at::float8 AS created_at,
           dead_at::float8 AS dead_at, reason
    FROM dead_letters WHERE id = $1`,
  purgeDeadLetter: `DELETE FROM dead_letters WHERE id = $1`,
  replayDeadLetter: `SELECT bridge_replay_dead_letter($1::bigint, ${NOW(2)}) AS replayed`,
  stats: `
    SELECT ${NOW(1)}::float8 AS now,
           (SELECT count(*)::int FROM dead_letters) AS dead_letters,
           coalesce((SELECT json_agg(json_build_object('kind', kind, 'depth', depth, 'oldest', oldest))
                     FROM (SELECT kind, count(*) AS depth, min(created_at) AS oldest FROM jobs GROUP BY kind) AS per_kind),
                    '[]'::json) AS kinds`,
  // An expiry in the past is a question (is the key remembered now?): answered without writing, so
  // the replay guard's probe on every push costs no commit (no WAL flush) of its own.
  markSeen: `
    WITH recorded AS (
      INSERT INTO seen_keys AS s (key, expires_at) SELECT $1, $2::bigint WHERE $2::bigint > ${NOW(3)}
      ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE s.expires_at <= ${NOW(3)}
      RETURNING 1)
    SELECT CASE WHEN $2::bigint > ${NOW(3)} THEN EXISTS (SELECT 1 FROM recorded)
           ELSE NOT EXISTS (SELECT 1 FROM seen_keys WHERE key = $1 AND expires_at > ${NOW(3)}) END AS fresh`,
  getToken: `SELECT value, expires_at::float8 AS expires_at FROM tokens WHERE name = $1`,
  putToken: `
    INSERT INTO tokens (name, value, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
  tryLock: `
    INSERT INTO locks AS l (name, owner, expires_at) VALUES ($1, $2, ${NOW(4)} + $3::bigint)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE l.expires_at <= ${NOW(4)} OR l.owner = excluded.owner`,
  unlock: `DELETE FROM locks WHERE name = $1 AND owner = $2`,
  getMapping: `
    SELECT openid, conversation_id, user_id, member_id, created_at::float8 AS created_at, updated_at::float8 AS updated_at
    FROM conversation_mappings WHERE openid = $1`,
  findMapping: `
    SELECT openid, conversation_id, user_id, member_id, created_at::float8 AS created_at, updated_at::float8 AS updated_at
    FROM conversation_mappings WHERE conversation_id = $1`,
  // First writer wins: the conversation id never changes once stored; user and member ids are
  // only filled in while empty, and only by an update about the stored conversation. The row lock
  // of ON CONFLICT serialises racing writers of one openid.
  saveMapping: `
    INSERT INTO conversation_mappings AS m (openid, conversation_id, user_id, member_id, created_at, updated_at)
    VALUES ($1, $2, $3, $4, ${NOW(5)}, ${NOW(5)})
    ON CONFLICT (openid) DO UPDATE SET
      user_id = CASE WHEN m.conversation_id = excluded.conversation_id THEN coalesce(m.user_id, excluded.user_id) ELSE m.user_id END,
      member_id = CASE WHEN m.conversation_id = excluded.conversation_id THEN coalesce(m.member_id, excluded.member_id) ELSE m.member_id END,
      updated_at = excluded.updated_at
    RETURNING openid, conversation_id, user_id, member_id, created_at::float8 AS created_at, updated_at::float8 AS updated_at`,
  getUploadedMedia: `
    SELECT key, media_id, type, expires_at::float8 AS expires_at FROM uploaded_media WHERE key = $1 AND expires_at > ${NOW(2)}`,
  putUploadedMedia: `
    INSERT INTO uploaded_media (key, media_id, type, expires_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (key) DO UPDATE SET media_id = excluded.media_id, type = excluded.type, expires_at = excluded.expires_at`,
  grantAllowance: `
    INSERT INTO send_allowances AS a (scope, kind, opened_at, closes_at, remaining) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (scope, kind) DO UPDATE SET
      opened_at = excluded.opened_at, closes_at = excluded.closes_at, remaining = excluded.remaining
    WHERE a.opened_at < excluded.opened_at`,
  // SKIP LOCKED is not wanted: two takers of one scope must queue, not both pass over the row.
  takeAllowance: `
    UPDATE send_allowances SET remaining = remaining - 1 WHERE (scope, kind) = (
      SELECT scope, kind FROM send_allowances WHERE scope = $1 AND closes_at > $2 AND remaining > 0
      ORDER BY closes_at, kind LIMIT 1 FOR UPDATE)
    AND remaining > 0`,
  revokeAllowances: `UPDATE send_allowances SET remaining = 0 WHERE scope = $1`,
  listAllowances: `
    SELECT scope, kind, opened_at::float8 AS opened_at, closes_at::float8 AS closes_at, remaining
    FROM send_allowances WHERE scope = $1 ORDER BY closes_at, kind`,
  rememberValue: `
    INSERT INTO remembered_values (key, value, expires_at) VALUES ($1, $2, $3)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
  recallValue: `SELECT value FROM remembered_values WHERE key = $1 AND expires_at > ${NOW(2)}`,
  ping: `SELECT version FROM schema_migrations LIMIT 1`,
} as const;

/**
 * One DELETE per table of expiring rows, a batch at a time: $1 the test clock (or NULL), $2 how long
 * rows are kept after their time.
 */
function pruneStatement(table: string, key: string, column: string): string {
  return `
    DELETE FROM ${table} WHERE (${key}) IN (
      SELECT ${key} FROM ${table} WHERE ${column} <= ${NOW(1)} - $2::bigint LIMIT ${PRUNE_BATCH})`;
}

const PRUNE_STATEMENTS = EXPIRING_ROWS.map((rows) => ({ rows, sql: pruneStatement(rows.table, rows.key, rows.column) }));

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

  /** Deletes expired dedup keys, seen keys and locks now (normally done after enqueues, at a low rate). */
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
