/**
 * Opens the store named by `DATABASE_URL`.
 *
 * `sqlite:<path>` (relative to the working directory; `sqlite::memory:` for a throwaway in-memory
 * store) is the single-instance store. `postgres://…` is reserved for the multi-instance store.
 */
import { isAbsolute, resolve } from 'node:path';
import { SqliteStore, type SqliteStoreOptions } from './sqlite-store';
import type { Store } from './store';

export interface OpenStoreOptions extends SqliteStoreOptions {
  /** Base for relative `sqlite:` paths. Default `process.cwd()`. */
  cwd?: string;
}

const ACCEPTED_FORMS = '`sqlite:<path>` (e.g. `sqlite:./data/bridge.db`), `sqlite::memory:` or `postgres://…`';

export async function openStore(databaseUrl: string, options: OpenStoreOptions = {}): Promise<Store> {
  const url = databaseUrl.trim();
  if (/^postgres(ql)?:\/\//i.test(url)) {
    throw new Error('DATABASE_URL: PostgreSQL support is not available yet; use `sqlite:<path>` for now');
  }
  if (/^sqlite:/i.test(url)) {
    const { cwd, ...storeOptions } = options;
    return SqliteStore.open(sqlitePath(url.slice('sqlite:'.length), cwd ?? process.cwd()), storeOptions);
  }
  // Never echo the value: a mistyped URL may carry a password.
  throw new Error(`DATABASE_URL must be ${ACCEPTED_FORMS}`);
}

function sqlitePath(rest: string, cwd: string): string {
  if (rest === ':memory:') return ':memory:';
  if (rest === '') throw new Error(`DATABASE_URL: the sqlite path is empty; expected ${ACCEPTED_FORMS}`);
  // `sqlite:///abs/path` is a common spelling of an absolute path; `sqlite://host/…` names a host we cannot use.
  if (rest.startsWith('//') && !rest.startsWith('///')) {
    throw new Error(`DATABASE_URL: sqlite takes a file path, not a host; expected ${ACCEPTED_FORMS}`);
  }
  const path = rest.startsWith('///') ? rest.slice(2) : rest;
  return isAbsolute(path) ? path : resolve(cwd, path);
}
