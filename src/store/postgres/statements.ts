/**
 * The SQL of the PostgreSQL store (`$n` parameters), and the prune statements made from the shared
 * pruning plan. The job writes that must keep `is_head` right are PL/pgSQL functions (migrations.ts).
 */
import { EXPIRING_ROWS, PRUNE_BATCH } from '../pruning';

/** `$n::bigint` for the clock: the test clock's value, or NULL for the database's own. */
const NOW = (n: number) => `coalesce($${n}::bigint, bridge_now_ms())`;

export const SQL = {
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

export const PRUNE_STATEMENTS = EXPIRING_ROWS.map((rows) => ({ rows, sql: pruneStatement(rows.table, rows.key, rows.column) }));
