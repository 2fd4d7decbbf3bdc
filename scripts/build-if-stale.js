#!/usr/bin/env node
'use strict';
/**
 * `npm run cli` runs this first: `npm run build` only when a source or tsconfig is newer than the
 * last build made here (dist/.build-stamp), so that a CLI call after an unchanged checkout starts
 * at once instead of compiling the whole project each time.
 */
const { spawnSync } = require('node:child_process');
const { mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const stamp = path.join(root, 'dist', '.build-stamp');
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

function newestMtime(target) {
  let stats;
  try {
    stats = statSync(target);
  } catch {
    return 0;
  }
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs; // a deleted or renamed file changes its directory
  for (const entry of readdirSync(target)) newest = Math.max(newest, newestMtime(path.join(target, entry)));
  return newest;
}

function builtAt() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return -1;
  }
}

const sourcesChanged = Math.max(...inputs.map((input) => newestMtime(path.join(root, input))));
if (sourcesChanged >= builtAt()) {
  const started = Date.now();
  const result = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.status !== 0) process.exit(result.status ?? 1);
  mkdirSync(path.dirname(stamp), { recursive: true });
  // The stamp takes the time the build started: a source saved during the build counts as newer.
  writeFileSync(stamp, `${new Date(started).toISOString()}\n`);
  const seconds = started / 1000;
  utimesSync(stamp, seconds, seconds);
}
