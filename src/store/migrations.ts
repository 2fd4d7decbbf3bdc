/**
 * Versioned schema migrations, as both stores keep them: an ordered list per backend
 * (sqlite/migrations.ts, postgres/migrations.ts: same tables, same meaning, each its own version
 * numbers), applied at open in one transaction. A migration is never edited once released: a schema
 * change is a new entry at the end. `schema_migrations` records which versions a database has.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The migrations a database at version `current` still needs, oldest first. Throws when the
 * database is newer than every migration this build knows: an older bridge must not write to it.
 */
export function pendingMigrations(migrations: readonly Migration[], current: number): Migration[] {
  const latestKnown = migrations.reduce((max, migration) => Math.max(max, migration.version), 0);
  if (current > latestKnown) {
    throw new Error(`database schema version ${current} is newer than this build supports (${latestKnown}); upgrade the bridge`);
  }
  return [...migrations].sort((a, b) => a.version - b.version).filter((migration) => migration.version > current);
}
