/**
 * The SQL of the SQLite store, prepared once per connection (named `:parameters` where a statement
 * takes several), and the prune statements made from the shared pruning plan.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { EXPIRING_ROWS, keptAfterMs, PRUNE_BATCH } from '../pruning';

const SQL = {
  claimDedupKey: `
    INSERT INTO dedup_keys (key, created_at) VALUES (:key, :now)
    ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at
    WHERE dedup_keys.created_at <= :expired_before`,
  insertJob: `
    INSERT INTO jobs (kind, order_key, payload, attempts, created_at, run_at, available_at, is_head)
    VALUES (:kind, :order_key, :payload, 0, :created_at, :run_at, :run_at,
            NOT EXISTS (SELECT 1 FROM jobs WHERE order_key = :order_key))`,
  // A read, no write lock: most claims of an idle or a quick queue find nothing, and an UPDATE that
  // changes nothing still costs a write transaction (about 50 µs against 3 µs for this).
  hasRunnableHead: `SELECT 1 AS runnable FROM jobs WHERE is_head = 1 AND available_at <= :now LIMIT 1`,
  claim: `
    UPDATE jobs SET attempts = attempts + 1, lease_until = :lease_until, available_at = :lease_until,
      lease_token = :lease_token, interrupted = interrupted OR running, running = 1
    WHERE seq IN (
      SELECT seq FROM jobs WHERE is_head = 1 AND available_at <= :now
      ORDER BY available_at, seq LIMIT :limit)
    RETURNING seq, kind, order_key, payload, attempts, created_at, last_error, interrupted`,
  claimKinds: `
    UPDATE jobs SET attempts = attempts + 1, lease_until = :lease_until, available_at = :lease_until,
      lease_token = :lease_token, interrupted = interrupted OR running, running = 1
    WHERE seq IN (
      SELECT seq FROM jobs WHERE is_head = 1 AND available_at <= :now
        AND kind IN (SELECT value FROM json_each(:kinds))
      ORDER BY available_at, seq LIMIT :limit)
    RETURNING seq, kind, order_key, payload, attempts, created_at, last_error, interrupted`,
  renewLease: `
    UPDATE jobs SET lease_until = :lease_until, available_at = :lease_until
    WHERE seq = :seq AND lease_token = :lease_token AND running = 1`,
  deleteJob: `
    DELETE FROM jobs WHERE seq = :seq AND lease_token = :lease_token
    RETURNING seq, kind, order_key, payload, attempts, created_at, last_error, is_head`,
  promoteHead: `
    UPDATE jobs SET is_head = 1
    WHERE seq = (SELECT seq FROM jobs WHERE order_key = ? ORDER BY seq LIMIT 1)`,
  retry: `
    UPDATE jobs SET run_at = :run_at, available_at = :run_at, lease_until = NULL, last_error = :error, running = 0
    WHERE seq = :seq AND lease_token = :lease_token`,
  insertDeadLetter: `
    INSERT INTO dead_letters (id, kind, order_key, payload, attempts, created_at, dead_at, reason, last_error)
    VALUES (:id, :kind, :order_key, :payload, :attempts, :created_at, :dead_at, :reason, :last_error)`,
  listDeadLetters: `
    SELECT id, kind, order_key, payload, attempts, created_at, dead_at, reason
    FROM dead_letters ORDER BY dead_at DESC, id DESC LIMIT ?`,
  getDeadLetter: `
    SELECT id, kind, order_key, payload, attempts, created_at, dead_at, reason FROM dead_letters WHERE id = ?`,
  deleteDeadLetter: `
    DELETE FROM dead_letters WHERE id = ? RETURNING kind, order_key, payload`,
  depthByKind: `SELECT kind, COUNT(*) AS depth, MIN(created_at) AS oldest FROM jobs GROUP BY kind`,
  countDeadLetters: `SELECT COUNT(*) AS count FROM dead_letters`,
  markSeen: `
    INSERT INTO seen_keys (key, expires_at) VALUES (:key, :expires_at)
    ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
    WHERE seen_keys.expires_at <= :now`,
  isSeen: `SELECT 1 AS seen FROM seen_keys WHERE key = :key AND expires_at > :now`,
  recordSeen: `
    INSERT INTO seen_keys (key, expires_at) VALUES (:key, :expires_at)
    ON CONFLICT (key) DO UPDATE SET expires_at = max(seen_keys.expires_at, excluded.expires_at)`,
  getToken: `SELECT value, expires_at FROM tokens WHERE name = ?`,
  putToken: `
    INSERT INTO tokens (name, value, expires_at) VALUES (:name, :value, :expires_at)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
  tryLock: `
    INSERT INTO locks (name, owner, expires_at) VALUES (:name, :owner, :expires_at)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE locks.expires_at <= :now OR locks.owner = excluded.owner`,
  unlock: `DELETE FROM locks WHERE name = ? AND owner = ?`,
  getMapping: `
    SELECT openid, conversation_id, user_id, member_id, created_at, updated_at
    FROM conversation_mappings WHERE openid = ?`,
  findMapping: `
    SELECT openid, conversation_id, user_id, member_id, created_at, updated_at
    FROM conversation_mappings WHERE conversation_id = ?`,
  // First writer wins: the conversation id never changes once stored; user and member ids are
  // only filled in while empty, and only by an update about the stored conversation.
  saveMapping: `
    INSERT INTO conversation_mappings (openid, conversation_id, user_id, member_id, created_at, updated_at)
    VALUES (:openid, :conversation_id, :user_id, :member_id, :now, :now)
    ON CONFLICT (openid) DO UPDATE SET
      user_id = CASE WHEN conversation_mappings.conversation_id = excluded.conversation_id
                     THEN coalesce(conversation_mappings.user_id, excluded.user_id) ELSE conversation_mappings.user_id END,
      member_id = CASE WHEN conversation_mappings.conversation_id = excluded.conversation_id
                       THEN coalesce(conversation_mappings.member_id, excluded.member_id) ELSE conversation_mappings.member_id END,
      updated_at = excluded.updated_at
    RETURNING openid, conversation_id, user_id, member_id, created_at, updated_at`,
  getUploadedMedia: `SELECT key, media_id, type, expires_at FROM uploaded_media WHERE key = ? AND expires_at > ?`,
  putUploadedMedia: `
    INSERT INTO uploaded_media (key, media_id, type, expires_at) VALUES (:key, :media_id, :type, :expires_at)
    ON CONFLICT (key) DO UPDATE SET media_id = excluded.media_id, type = excluded.type, expires_at = excluded.expires_at`,
  grantAllowance: `
    INSERT INTO send_allowances (scope, kind, opened_at, closes_at, remaining)
    VALUES (:scope, :kind, :opened_at, :closes_at, :remaining)
    ON CONFLICT (scope, kind) DO UPDATE SET
      opened_at = excluded.opened_at, closes_at = excluded.closes_at, remaining = excluded.remaining
    WHERE send_allowances.opened_at < excluded.opened_at`,
  takeAllowance: `
    UPDATE send_allowances SET remaining = remaining - 1 WHERE rowid = (
      SELECT rowid FROM send_allowances WHERE scope = :scope AND closes_at > :now AND remaining > 0
      ORDER BY closes_at, kind LIMIT 1)`,
  revokeAllowances: `UPDATE send_allowances SET remaining = 0 WHERE scope = ?`,
  listAllowances: `
    SELECT scope, kind, opened_at, closes_at, remaining FROM send_allowances WHERE scope = ? ORDER BY closes_at, kind`,
  rememberValue: `
    INSERT INTO remembered_values (key, value, expires_at) VALUES (:key, :value, :expires_at)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
  recallValue: `SELECT value FROM remembered_values WHERE key = ? AND expires_at > ?`,
  ping: `SELECT version FROM schema_migrations LIMIT 1`,
} as const;

export type Statements = { readonly [K in keyof typeof SQL]: StatementSync };

export function prepareStatements(db: DatabaseSync): Statements {
  const statements = {} as { -readonly [K in keyof typeof SQL]: StatementSync };
  for (const name of Object.keys(SQL) as (keyof typeof SQL)[]) statements[name] = db.prepare(SQL[name]);
  return statements;
}

/** Deletes up to a batch of a table's expired rows: run with the cutoff (now − `keptAfterMs`). */
export interface PruneStatement {
  table: string;
  keptAfterMs: number;
  statement: StatementSync;
}

/** One DELETE per table of expiring rows (SQLite deletes by rowid). */
export function preparePruneStatements(db: DatabaseSync, dedupRetentionMs: number): PruneStatement[] {
  return EXPIRING_ROWS.map((rows) => ({
    table: rows.table,
    keptAfterMs: keptAfterMs(rows, dedupRetentionMs),
    statement: db.prepare(
      `DELETE FROM ${rows.table} WHERE rowid IN (SELECT rowid FROM ${rows.table} WHERE ${rows.column} <= ? LIMIT ${PRUNE_BATCH})`,
    ),
  }));
}
