/**
 * What `npm test` needs besides node_modules, checked once before any test file runs (jest
 * `globalSetup`), so that a missing one is one clear line instead of hundreds of failing tests:
 *
 * - PostgreSQL at `TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/postgres) that
 *   lets the tests create databases without a password: the store and multi-instance tests.
 * - Chromium at `CHROMIUM_PATH` (default /usr/bin/chromium): the console's browser test.
 *
 * Both are mandatory: a missing one fails the run, it never turns tests into skips.
 */
import { accessSync, constants } from 'node:fs';
import { runQuery } from './postgres';

export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** One line per missing prerequisite; empty when everything is there. */
export async function missingPrerequisites(env: NodeJS.ProcessEnv): Promise<string[]> {
  const problems: string[] = [];
  const postgresUrl = env.TEST_POSTGRES_URL || DEFAULT_POSTGRES_URL;
  try {
    const rows = await runQuery<{ allowed: boolean }>(
      postgresUrl,
      'SELECT rolcreatedb OR rolsuper AS allowed FROM pg_roles WHERE rolname = current_user',
    );
    if (!rows[0]?.allowed) problems.push(`PostgreSQL at ${hostOf(postgresUrl)}: the user may not create databases (the tests make their own)`);
  } catch (error) {
    problems.push(
      `PostgreSQL at ${hostOf(postgresUrl)} is not usable (${(error as Error).message}): start it with trust auth for local TCP, ` +
        'or set TEST_POSTGRES_URL (see docs/development.md)',
    );
  }
  const chromium = env.CHROMIUM_PATH || DEFAULT_CHROMIUM_PATH;
  try {
    accessSync(chromium, constants.X_OK);
  } catch {
    problems.push(`Chromium not found at ${chromium}: apt-get install -y chromium, or set CHROMIUM_PATH (see docs/development.md)`);
  }
  return problems;
}

export default async function checkPrerequisites(): Promise<void> {
  const problems = await missingPrerequisites(process.env);
  if (problems.length === 0) return;
  process.stderr.write(`\nnpm test cannot run, a prerequisite is missing:\n${problems.map((line) => `  - ${line}`).join('\n')}\n\n`);
  const error = new Error(`${problems.length} test prerequisite(s) missing, see above`);
  // Jest prints the stack of a failed globalSetup: the message alone says it all.
  error.stack = error.message;
  throw error;
}
