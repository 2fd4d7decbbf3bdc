/**
 * The SQLite schema, as an ordered list of versioned migrations (see ../migrations.ts).
 * `applySqliteMigrations` brings a database up to date in one transaction at open, so a crash
 * mid-upgrade leaves the previous schema intact. The PostgreSQL list (postgres/migrations.ts) has
 * the same tables and its own version numbers (its version 1 already has what SQLite's version 2 adds).
 */
import type { DatabaseSync } from 'node:sqlite';
import { pendingMigrations, type Migration } from '../migrations';

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, dead letters, dedup keys, seen keys, tokens, locks',
    sql: `
      -- Live jobs only (pending or leased). AUTOINCREMENT so that an id is never reused: a slow
      -- worker completing a job id after its lease expired must never touch a different job.
      CREATE TABLE jobs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT    NOT NULL,
        order_key    TEXT    NOT NULL,
        payload      TEXT    NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        created_at   INTEGER NOT NULL,
        run_at       INTEGER NOT NULL,
        lease_until  INTEGER,
        last_error   TEXT,
        -- 1 for the oldest live job of its order key: only heads may be claimed.
        is_head      INTEGER NOT NULL,
        -- When the job can next be claimed: run_at while pending, lease_until while leased.
        available_at INTEGER NOT NULL
      );
      -- Claim reads the heads in availability order: O(log n + limit), however deep the queue.
      CREATE INDEX jobs_claimable ON jobs (available_at) WHERE is_head = 1;
      -- Finding the next head of a key when its head leaves.
      CREATE INDEX jobs_order_key ON jobs (order_key, seq);

      CREATE TABLE dead_letters (
        id         INTEGER PRIMARY KEY,  -- the job's seq
        kind       TEXT    NOT NULL,
        order_key  TEXT    NOT NULL,
        payload    TEXT    NOT NULL,
        attempts   INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        dead_at    INTEGER NOT NULL,
        reason     TEXT    NOT NULL,
        last_error TEXT
      );
      CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at);

      CREATE TABLE dedup_keys (
        key        TEXT    PRIMARY KEY,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX dedup_keys_created_at ON dedup_keys (created_at);

      CREATE TABLE seen_keys (
        key        TEXT    PRIMARY KEY,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX seen_keys_expires_at ON seen_keys (expires_at);

      CREATE TABLE tokens (
        name       TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
      );

      CREATE TABLE locks (
        name       TEXT    PRIMARY KEY,
        owner      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'lease tokens and interrupted runs',
    sql: `
      -- The claim that holds the job: outcome calls must present it (another claim replaces it).
      ALTER TABLE jobs ADD COLUMN lease_token TEXT;
      -- 1 from a claim until its outcome is recorded: still 1 at the next claim means the run before
      -- it ended without an outcome (crash, lost lease).
      ALTER TABLE jobs ADD COLUMN running INTEGER NOT NULL DEFAULT 0;
      -- Sticky: some earlier run of this job never recorded its outcome.
      ALTER TABLE jobs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 3,
    name: 'per-user conversation mappings, uploaded media',
    sql: `
      -- One Vonage conversation per WeChat user, with the set-up progress (user_id, member_id set
      -- as each remote call succeeds), so a crash between the calls resumes instead of duplicating.
      CREATE TABLE conversation_mappings (
        openid          TEXT    PRIMARY KEY,
        conversation_id TEXT    NOT NULL UNIQUE,
        user_id         TEXT,
        member_id       TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
      );

      -- Files uploaded to WeChat (media/upload), by a key for their source, while the media_id lives.
      CREATE TABLE uploaded_media (
        key        TEXT    PRIMARY KEY,
        media_id   TEXT    NOT NULL,
        type       TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX uploaded_media_expires_at ON uploaded_media (expires_at);
    `,
  },
  {
    version: 4,
    name: 'send allowances, remembered values',
    sql: `
      -- How many sends a recipient may still get, and until when (one row per kind of grant).
      CREATE TABLE send_allowances (
        scope      TEXT    NOT NULL,
        kind       TEXT    NOT NULL,
        opened_at  INTEGER NOT NULL,
        closes_at  INTEGER NOT NULL,
        remaining  INTEGER NOT NULL,
        PRIMARY KEY (scope, kind)
      );
      CREATE INDEX send_allowances_closes_at ON send_allowances (closes_at);

      -- Small JSON values kept until they expire (e.g. a platform message id -> its outbound event).
      CREATE TABLE remembered_values (
        key        TEXT    PRIMARY KEY,
        value      TEXT    NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX remembered_values_expires_at ON remembered_values (expires_at);
    `,
  },
  {
    version: 5,
    name: 'one head job per order key, enforced',
    sql: `
      -- The head of an order key is the job that may run next: always its oldest live job. Every
      -- write keeps that so; from here on the database also refuses a second head for a key. Marks
      -- that went wrong anyway are put right first, so that the index can be built.
      UPDATE jobs SET is_head = (seq = (SELECT min(oldest.seq) FROM jobs AS oldest WHERE oldest.order_key = jobs.order_key))
      WHERE is_head <> (seq = (SELECT min(oldest.seq) FROM jobs AS oldest WHERE oldest.order_key = jobs.order_key));
      CREATE UNIQUE INDEX jobs_one_head_per_order_key ON jobs (order_key) WHERE is_head = 1;
    `,
  },
];

/**
 * Applies the migrations `db` does not have yet, all in one IMMEDIATE transaction (so two
 * processes opening the same new file cannot both migrate). Returns the versions applied.
 */
export function applySqliteMigrations(db: DatabaseSync, migrations: readonly Migration[], now: number): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const applied: number[] = [];
  db.exec('BEGIN IMMEDIATE');
  try {
    const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get();
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const migration of pendingMigrations(migrations, Number(row?.version ?? 0))) {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, now);
      applied.push(migration.version);
    }
    db.exec('COMMIT');
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
  return applied;
}
