/**
 * Opens the bridge's store for an operator command: the same DATABASE_URL (and default) as the
 * bridge, validated by the same rules, and nothing else required.
 *
 * Beside a running bridge: leases are left alone (only the process that runs the workers releases
 * them at start), and a SQLite file that does not exist is an error rather than a new empty
 * database, so a mistyped path never looks like an empty queue.
 */
import { existsSync } from 'node:fs';
import { loadSettings } from '../config';
import { openStore, sqliteLocation } from '../store/open-store';
import type { Store } from '../store/store';
import { CliFailure } from './errors';

export async function openCliStore(env: NodeJS.ProcessEnv, cwd: string): Promise<Store> {
  const result = loadSettings(env, ['DATABASE_URL']);
  if (!result.ok) throw new CliFailure(`bad setting: ${result.errors.join('; ')}`);
  const databaseUrl = result.settings.DATABASE_URL;

  const file = sqliteFile(databaseUrl, cwd);
  if (file !== undefined && !existsSync(file)) {
    throw new CliFailure(`no SQLite database at ${file} (from DATABASE_URL): run this where the bridge runs, or set DATABASE_URL`);
  }
  try {
    return await openStore(databaseUrl, { cwd });
  } catch (error) {
    // openStore never echoes the URL (it may hold a password); neither do we.
    throw new CliFailure(`cannot open the store: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The file a `sqlite:` DATABASE_URL names (by openStore's rules), or undefined for other stores and `:memory:`. */
function sqliteFile(databaseUrl: string, cwd: string): string | undefined {
  const location = sqliteLocation(databaseUrl, cwd);
  return location?.kind === 'file' ? location.path : undefined;
}
