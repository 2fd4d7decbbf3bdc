/** The SQLite store by the path the WeChat client's tests import it from; it lives in sqlite/store.ts. */
export { SqliteStore, type SqliteStoreOptions } from './sqlite/store';
