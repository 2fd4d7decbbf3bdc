/**
 * Opens the store named by `DATABASE_URL`: the one entry point for both implementations.
 *
 * - `sqlite:<path>` (relative to the working directory; `sqlite::memory:` for a throwaway
 *   in-memory store): one instance.
 * - `postgres://…` or `postgresql://…` (any libpq-style URL `pg` accepts, e.g. with `?sslmode=`):
 *   several instances sharing one database. The schema is migrated at open, safely when several
 *   instances start at once.
 *
 * The URL is never echoed in an error: it may carry a password.
 */
import { isAbsolute, resolve } from 'node:path';
import type { BackendOptions } from './backend-options';
import { errorWithCode, messageOf } from './error-details';
import { PostgresStore, type PostgresStoreOptions } from './postgres/store';
import { SqliteStore, type SqliteStoreOptions } from './sqlite/store';
import type { Store } from './store';

/** What both backends take, given once here; `pruneIntervalMs` per backend below. */
type SharedOptions = Omit<BackendOptions, 'pruneIntervalMs'>;

export interface OpenStoreOptions extends SharedOptions {
  /** Base for relative `sqlite:` paths. Default `process.cwd()`. */
  cwd?: string;
  /**
   * SQLite only: hand every leased job back at open, because a SQLite file belongs to one running
   * bridge (see SqliteStoreOptions). Ignored for PostgreSQL, where other instances may be alive and
   * holding leases: there a crashed instance's jobs are taken over when their lease expires.
   */
  releaseLeasesOnOpen?: boolean;
  /** SQLite only: see SqliteStoreOptions. */
  sqlite?: Pick<SqliteStoreOptions, 'busyTimeoutMs' | 'pruneIntervalMs'>;
  /** PostgreSQL only: pool size, timeouts, batching; see PostgresStoreOptions. */
  postgres?: Omit<PostgresStoreOptions, keyof SharedOptions>;
}

const ACCEPTED_FORMS =
  '`sqlite:<path>` (e.g. `sqlite:./data/bridge.db`), `sqlite::memory:` or `postgres://user:password@host:5432/database`';

export async function openStore(databaseUrl: string, options: OpenStoreOptions = {}): Promise<Store> {
  const url = databaseUrl.trim();
  const common = {
    ...(options.now ? { now: options.now } : {}),
    ...(options.dedupRetentionMs !== undefined ? { dedupRetentionMs: options.dedupRetentionMs } : {}),
    ...(options.onBatchCommit ? { onBatchCommit: options.onBatchCommit } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  if (/^postgres(ql)?:\/\//i.test(url)) {
    checkPostgresUrl(url);
    try {
      return await PostgresStore.open(url, { ...options.postgres, ...common });
    } catch (error) {
      throw withoutPassword(error, url);
    }
  }
  const sqlite = sqliteLocation(url, options.cwd ?? process.cwd());
  if (sqlite !== undefined) {
    if (sqlite.kind === 'invalid') throw new Error(`DATABASE_URL: ${sqlite.reason}; expected ${ACCEPTED_FORMS}`);
    return SqliteStore.open(sqlite.kind === 'memory' ? ':memory:' : sqlite.path, {
      ...options.sqlite,
      ...common,
      ...(options.releaseLeasesOnOpen ? { releaseLeasesOnOpen: true } : {}),
    });
  }
  // Never echo the value: a mistyped URL may carry a password.
  throw new Error(`DATABASE_URL must be ${ACCEPTED_FORMS}`);
}

function checkPostgresUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // URL's own error carries the input (and so the password) in a field: say it in our words.
    throw new Error(`DATABASE_URL is not a valid URL; expected ${ACCEPTED_FORMS}`);
  }
  if (parsed.hostname === '' && !parsed.searchParams.has('host')) {
    throw new Error(`DATABASE_URL names no PostgreSQL host; expected ${ACCEPTED_FORMS}`);
  }
}

/** The error to surface: its message, with the URL's password blanked should it appear in it. */
function withoutPassword(error: unknown, url: string): Error {
  const message = messageOf(error);
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // Already checked; nothing to blank.
  }
  return errorWithCode(password ? message.split(password).join('***') : message, error);
}

/** What a `sqlite:` DATABASE_URL names; undefined for a URL of another kind. */
export type SqliteLocation = { kind: 'memory' } | { kind: 'file'; path: string } | { kind: 'invalid'; reason: string };

/**
 * Where a `sqlite:` URL points: `sqlite::memory:`, or a file path relative to `cwd` (or absolute,
 * also spelled `sqlite:///abs/path`). Operator tools use it to find the file the bridge opens.
 */
export function sqliteLocation(databaseUrl: string, cwd: string): SqliteLocation | undefined {
  const url = databaseUrl.trim();
  if (!/^sqlite:/i.test(url)) return undefined;
  const rest = url.slice('sqlite:'.length);
  if (rest === ':memory:') return { kind: 'memory' };
  if (rest === '') return { kind: 'invalid', reason: 'the sqlite path is empty' };
  // `sqlite:///abs/path` is a common spelling of an absolute path; `sqlite://host/…` names a host we cannot use.
  if (rest.startsWith('//') && !rest.startsWith('///')) return { kind: 'invalid', reason: 'sqlite takes a file path, not a host' };
  const path = rest.startsWith('///') ? rest.slice(2) : rest;
  return { kind: 'file', path: isAbsolute(path) ? path : resolve(cwd, path) };
}
