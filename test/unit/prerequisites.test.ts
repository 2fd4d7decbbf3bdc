/**
 * The check `npm test` runs once before any test file (jest globalSetup): one line per missing
 * prerequisite, and a run that fails on one instead of skipping or cascading.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { missingPrerequisites } from '../support/prerequisites';
import { freePort } from '../support/net';

const ROOT = path.join(__dirname, '../..');

describe('test prerequisites', () => {
  test('PostgreSQL and Chromium as this run has them: nothing missing', async () => {
    await expect(missingPrerequisites(process.env)).resolves.toEqual([]);
  });

  test('a PostgreSQL that does not answer and a Chromium that is not there: one line each', async () => {
    const port = await freePort();
    const problems = await missingPrerequisites({
      TEST_POSTGRES_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
      CHROMIUM_PATH: '/nonexistent/chromium',
    });
    expect(problems).toEqual([
      expect.stringMatching(new RegExp(`^PostgreSQL at 127\\.0\\.0\\.1:${port} is not usable .*TEST_POSTGRES_URL`)),
      expect.stringMatching(/^Chromium not found at \/nonexistent\/chromium: .*CHROMIUM_PATH/),
    ]);
    for (const line of problems) expect(line).not.toContain('\n');
  });

  test('jest stops before any test with those lines and exit code 1', async () => {
    const port = await freePort();
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [path.join(ROOT, 'node_modules/jest/bin/jest.js'), '--ci', 'test/unit/logger.test.ts'],
        {
          cwd: ROOT,
          timeout: 60_000,
          env: { ...process.env, TEST_POSTGRES_URL: `postgres://postgres@127.0.0.1:${port}/postgres`, CHROMIUM_PATH: '/nonexistent/chromium' },
        },
        (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, output: stdout + stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`PostgreSQL at 127.0.0.1:${port} is not usable`);
    expect(result.output).toContain('Chromium not found at /nonexistent/chromium');
    expect(result.output).not.toContain("reading 'cleanup'");
    expect(result.output).not.toMatch(/Tests:\s+\d+/);
  });
});
