/**
 * `npm run cli` builds only when the sources changed since the last build (scripts/build-if-stale.js),
 * tried on a throwaway project whose `build` script just counts how often it runs.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const SCRIPT = path.join(__dirname, '../../scripts/build-if-stale.js');

describe('build-if-stale', () => {
  let project: string;
  const builds = () => (existsSync(path.join(project, 'builds.txt')) ? readFileSync(path.join(project, 'builds.txt'), 'utf8').length : 0);
  const runScript = () => execFileSync(process.execPath, [path.join(project, 'scripts/build-if-stale.js')], { cwd: project, stdio: 'pipe', timeout: 30_000 });

  beforeEach(() => {
    project = mkdtempSync(path.join(tmpdir(), 'bridge-build-stale-'));
    mkdirSync(path.join(project, 'scripts'));
    mkdirSync(path.join(project, 'src'));
    cpSync(SCRIPT, path.join(project, 'scripts/build-if-stale.js'));
    writeFileSync(path.join(project, 'src/a.ts'), 'export const a = 1;\n');
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'stale-probe', private: true, scripts: { build: "node -e \"require('fs').appendFileSync('builds.txt','x')\"" } }),
    );
    // Sources from a minute ago, as after a checkout.
    const past = Date.now() / 1000 - 60;
    for (const file of ['src/a.ts', 'src', 'package.json']) utimesSync(path.join(project, file), past, past);
  });
  // The last build as if made 30 s ago, so that a file written now is newer on any file system.
  const backdateLastBuild = () => {
    const past = Date.now() / 1000 - 30;
    utimesSync(path.join(project, 'dist/.build-stamp'), past, past);
  };
  afterEach(() => rmSync(project, { recursive: true, force: true }));

  test('builds the first time, not again while nothing changed, again after a source changes', () => {
    runScript();
    expect(builds()).toBe(1);
    runScript();
    runScript();
    expect(builds()).toBe(1);

    backdateLastBuild();
    writeFileSync(path.join(project, 'src/a.ts'), 'export const a = 2;\n');
    runScript();
    expect(builds()).toBe(2);
    runScript();
    expect(builds()).toBe(2);
  });

  test('a new source file counts as a change', () => {
    runScript();
    backdateLastBuild();
    writeFileSync(path.join(project, 'src/b.ts'), 'export const b = 1;\n');
    runScript();
    expect(builds()).toBe(2);
  });
});
