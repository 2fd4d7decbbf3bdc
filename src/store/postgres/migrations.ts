/**
 * The PostgreSQL schema, as an ordered list of versioned migrations (the counterpart of
 * sqlite/migrations.ts: same tables, same meaning, its own version numbers).
 *
 * A migration is never edited once released: a schema change is a new entry at the end.
 * `applyPostgresMigrations` runs at every start. Several instances may start at once against one
 * database, so it takes a transaction-scoped advisory lock first: one instance migrates, the others
 * wait for its commit and then find nothing left to do. A failed migration rolls back whole.
 *
 * Times are epoch milliseconds in `bigint` columns, as in SQLite, so both stores share one model.
 * `bridge_now_ms()` is the database's clock in the same unit: leases and lock expiries are measured
 * on it, so instances whose own clocks drift apart still agree on when a lease has run out.
 *
 * Per-key order across instances: `is_head` marks the oldest live job of each order key (only heads
 * are claimable). Keeping it right needs the writers of one key to take turns, so every change of a
 * key's set of jobs (enqueue, complete, dead-letter, replay) first takes a transaction advisory lock
 * on the key (`hashtextextended(order_key, 0)`; a hash collision only makes two keys take turns).
 * These writes are PL/pgSQL functions: one round trip and one atomic statement each, and each
 * statement inside sees what committed before it acquired its lock. Should a write ever get it
 * wrong, a partial unique index (`jobs_one_head_per_order_key`) refuses a second head for a key.
 */
import type { ClientBase } from 'pg';
import { pendingMigrations, type Migration } from '../migrations';

/** The advisory lock (two-int form, its own key space) held while migrating: "wcb" + 1. */
const MIGRATION_LOCK: readonly [number, number] = [0x776362, 1];

export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs with leases, dead letters, dedup keys, seen keys, tokens, locks',
    sql: `
      CREATE FUNCTION bridge_now_ms() RETURNS bigint LANGUAGE sql STABLE AS
        $$ SELECT floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint $$;

      -- Live jobs only (pending or leased). seq is never reused, so a stale id names no other job.
      CREATE TABLE jobs (
        seq          bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind         text    NOT NULL,
        order_key    text    NOT NULL,
        payload      text    NOT NULL,
        attempts     integer NOT NULL DEFAULT 0,
        created_at   bigint  NOT NULL,
        run_at       bigint  NOT NULL,
        lease_until  bigint,
        -- The claim that holds the job; outcome calls must present it.
        lease_token  text,
        -- True from a claim until its outcome is recorded.
        running      boolean NOT NULL DEFAULT false,
        -- Sticky: an earlier run never recorded its outcome (crashed or lost its lease).
        interrupted  boolean NOT NULL DEFAULT false,
        last_error   text,
        -- The oldest live job of its order key: only heads may be claimed.
        is_head      boolean NOT NULL,
        -- When the job can next be claimed: run_at while pending, lease_until while leased.
        available_at bigint  NOT NULL
      );
      CREATE INDEX jobs_claimable ON jobs (available_at, seq) WHERE is_head;
      CREATE INDEX jobs_order_key ON jobs (order_key, seq);

      CREATE TABLE dead_letters (
        id         bigint  PRIMARY KEY,  -- the job's seq
        kind       text    NOT NULL,
        order_key  text    NOT NULL,
        payload    text    NOT NULL,
        attempts   integer NOT NULL,
        created_at bigint  NOT NULL,
        dead_at    bigint  NOT NULL,
        reason     text    NOT NULL,
        last_error text
      );
      CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at);

      CREATE TABLE dedup_keys (
        key        text   PRIMARY KEY,
        created_at bigint NOT NULL
      );
      CREATE INDEX dedup_keys_created_at ON dedup_keys (created_at);

      CREATE TABLE seen_keys (
        key        text   PRIMARY KEY,
        expires_at bigint NOT NULL
      );
      CREATE INDEX seen_keys_expires_at ON seen_keys (expires_at);

      CREATE TABLE tokens (
        name       text   PRIMARY KEY,
        value      text   NOT NULL,
        expires_at bigint NOT NULL
      );

      CREATE TABLE locks (
        name       text   PRIMARY KEY,
        owner      text   NOT NULL,
        expires_at bigint NOT NULL
      );

      -- Stores a batch of jobs (several enqueue calls: one commit). Returns, per job in input
      -- order, whether it was stored (false: its dedup key is already known, or repeats an earlier
      -- job of the batch). Locks are taken in sorted order, order keys first, then dedup keys, so
      -- two batches never wait for each other in a cycle.
      CREATE FUNCTION bridge_enqueue(
        p_kinds text[], p_order_keys text[], p_payloads text[], p_dedup_keys text[], p_run_ats bigint[],
        p_now bigint, p_dedup_expired_before bigint
      ) RETURNS boolean[] LANGUAGE plpgsql AS $$
      DECLARE
        v_lock bigint;
        v_dedup_key text;
        v_claimed text[] := '{}';
        v_stored boolean[] := '{}';
        v_run_at bigint;
      BEGIN
        FOR v_lock IN SELECT DISTINCT hashtextextended(k, 0) FROM unnest(p_order_keys) AS k ORDER BY 1 LOOP
          PERFORM pg_advisory_xact_lock(v_lock);
        END LOOP;
        FOR v_dedup_key IN SELECT DISTINCT k FROM unnest(p_dedup_keys) AS k WHERE k IS NOT NULL ORDER BY 1 LOOP
          INSERT INTO dedup_keys AS d (key, created_at) VALUES (v_dedup_key, p_now)
            ON CONFLICT (key) DO UPDATE SET created_at = excluded.created_at
            WHERE d.created_at <= p_dedup_expired_before;
          IF FOUND THEN
            v_claimed := v_claimed || v_dedup_key;
          END IF;
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
          IF p_dedup_keys[i] IS NOT NULL THEN
            IF NOT (p_dedup_keys[i] = ANY (v_claimed)) THEN
              v_stored := v_stored || false;
              CONTINUE;
            END IF;
            -- Claimed for this job only: a later job of the batch with the same key is a duplicate.
            v_claimed := array_remove(v_claimed, p_dedup_keys[i]);
          END IF;
          v_run_at := coalesce(p_run_ats[i], p_now);
          INSERT INTO jobs (kind, order_key, payload, created_at, run_at, available_at, is_head)
          VALUES (p_kinds[i], p_order_keys[i], p_payloads[i], p_now, v_run_at, v_run_at,
                  NOT EXISTS (SELECT 1 FROM jobs WHERE order_key = p_order_keys[i]));
          v_stored := v_stored || true;
        END LOOP;
        RETURN v_stored;
      END $$;

      -- Completes (p_dead_reason NULL) or dead-letters a job still held by p_lease_token, and hands
      -- its key over to the next job. False when the job is gone or another claim holds it.
      CREATE FUNCTION bridge_finish_job(p_seq bigint, p_lease_token text, p_dead_reason text, p_now bigint)
      RETURNS boolean LANGUAGE plpgsql AS $$
      DECLARE
        v_order_key text;
        v_job jobs%ROWTYPE;
      BEGIN
        SELECT order_key INTO v_order_key FROM jobs WHERE seq = p_seq AND lease_token = p_lease_token;
        IF NOT FOUND THEN
          RETURN false;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended(v_order_key, 0));
        DELETE FROM jobs WHERE seq = p_seq AND lease_token = p_lease_token RETURNING * INTO v_job;
        IF NOT FOUND THEN
          RETURN false;  -- taken over while we waited for the key
        END IF;
        IF p_dead_reason IS NOT NULL THEN
          INSERT INTO dead_letters (id, kind, order_key, payload, attempts, created_at, dead_at, reason, last_error)
          VALUES (v_job.seq, v_job.kind, v_job.order_key, v_job.payload, v_job.attempts, v_job.created_at,
                  p_now, p_dead_reason, v_job.last_error);
        END IF;
        IF v_job.is_head THEN
          UPDATE jobs SET is_head = true
          WHERE seq = (SELECT min(seq) FROM jobs WHERE order_key = v_order_key);
        END IF;
        RETURN true;
      END $$;

      -- Puts a dead letter back as a fresh job at the end of its key's queue.
      CREATE FUNCTION bridge_replay_dead_letter(p_id bigint, p_now bigint)
      RETURNS boolean LANGUAGE plpgsql AS $$
      DECLARE
        v_dead dead_letters%ROWTYPE;
      BEGIN
        DELETE FROM dead_letters WHERE id = p_id RETURNING * INTO v_dead;
        IF NOT FOUND THEN
          RETURN false;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtextextended(v_dead.order_key, 0));
        INSERT INTO jobs (kind, order_key, payload, created_at, run_at, available_at, is_head)
        VALUES (v_dead.kind, v_dead.order_key, v_dead.payload, p_now, p_now, p_now,
                NOT EXISTS (SELECT 1 FROM jobs WHERE order_key = v_dead.order_key));
        RETURN true;
      END $$;
    `,
  },
  {
    version: 2,
    name: 'per-user conversation mappings, uploaded media',
    sql: `
      -- One Vonage conversation per WeChat user, with the set-up progress (user_id, member_id set
      -- as each remote call succeeds), so a crash between the calls resumes instead of duplicating.
      CREATE TABLE conversation_mappings (
        openid          text   PRIMARY KEY,
        conversation_id text   NOT NULL UNIQUE,
        user_id         text,
        member_id       text,
        created_at      bigint NOT NULL,
        updated_at      bigint NOT NULL
      );

      -- Files uploaded to WeChat (media/upload), by a key for their source, while the media_id lives.
      CREATE TABLE uploaded_media (
        key        text   PRIMARY KEY,
        media_id   text   NOT NULL,
        type       text   NOT NULL,
        expires_at bigint NOT NULL
      );
      CREATE INDEX uploaded_media_expires_at ON uploaded_media (expires_at);
    `,
  },
  {
    version: 3,
    name: 'send allowances, remembered values',
    sql: `
      -- How many sends a recipient may still get, and until when (one row per kind of grant).
      CREATE TABLE send_allowances (
        scope      text    NOT NULL,
        kind       text    NOT NULL,
        opened_at  bigint  NOT NULL,
        closes_at  bigint  NOT NULL,
        remaining  integer NOT NULL,
        PRIMARY KEY (scope, kind)
      );
      CREATE INDEX send_allowances_closes_at ON send_allowances (closes_at);

      -- Small JSON values kept until they expire (e.g. a platform message id -> its outbound event).
      CREATE TABLE remembered_values (
        key        text   PRIMARY KEY,
        value      text   NOT NULL,
        expires_at bigint NOT NULL
      );
      CREATE INDEX remembered_values_expires_at ON remembered_values (expires_at);
    `,
  },
  {
    version: 4,
    name: 'one head job per order key, enforced',
    sql: `
      -- The head of an order key is the job that may run next: always its oldest live job. Every
      -- write keeps that so under the key's advisory lock; from here on the database also refuses a
      -- second head for a key. Marks that went wrong anyway are put right first, so that the index
      -- can be built.
      UPDATE jobs SET is_head = (jobs.seq = oldest.seq)
      FROM (SELECT order_key, min(seq) AS seq FROM jobs GROUP BY order_key) AS oldest
      WHERE jobs.order_key = oldest.order_key AND jobs.is_head <> (jobs.seq = oldest.seq);
      CREATE UNIQUE INDEX jobs_one_head_per_order_key ON jobs (order_key) WHERE is_head;
    `,
  },
];

/**
 * Applies the migrations the database does not have yet, in one transaction under the migration
 * advisory lock. Returns the versions applied (empty when another instance got there first).
 */
export async function applyPostgresMigrations(
  client: ClientBase,
  migrations: readonly Migration[],
): Promise<number[]> {
  const applied: number[] = [];
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
    // Created under the lock: two instances racing on CREATE TABLE IF NOT EXISTS could both try.
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    integer PRIMARY KEY,
      name       text    NOT NULL,
      applied_at bigint  NOT NULL
    )`);
    const { rows } = await client.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
    for (const migration of pendingMigrations(migrations, rows[0]?.version ?? 0)) {
      await client.query(migration.sql);
      await client.query(
        'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, bridge_now_ms())',
        [migration.version, migration.name],
      );
      applied.push(migration.version);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  return applied;
}
