#!/usr/bin/env node
'use strict';
/**
 * The `wechat-bridge` command (package.json `bin`, so `npm link` / `npx wechat-bridge`). It runs the
 * compiled CLI on whatever `node` the shell found; when that Node.js is too old for node:sqlite it
 * runs it again on the project's own Node 24 (the `node` package in node_modules), and when there
 * is none (an `--omit=dev` install) it says in one line which version is needed.
 */
const { spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
if (!existsSync(cli)) {
  process.stderr.write(`wechat-bridge: ${path.relative(process.cwd(), cli) || cli} is missing; run \`npm run build\` in ${root} first\n`);
  process.exit(1);
}
const { isSupportedNodeVersion, unsupportedNodeMessage } = require('../dist/node-version.js');

if (isSupportedNodeVersion(process.versions.node)) {
  require(cli);
} else {
  // Set on the re-run, so that a bundled Node that is too old as well cannot loop.
  const REEXEC = 'WECHAT_BRIDGE_BUNDLED_NODE';
  const bundled = path.join(root, 'node_modules', 'node', 'bin', 'node');
  if (process.env[REEXEC] || !existsSync(bundled)) {
    process.stderr.write(`${unsupportedNodeMessage('wechat-bridge', process.versions.node)}\n`);
    process.exit(1);
  }
  const result = spawnSync(bundled, [cli, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [REEXEC]: '1' },
  });
  if (result.error) {
    process.stderr.write(`wechat-bridge: cannot run ${bundled}: ${result.error.message}\n`);
    process.exit(1);
  }
  if (result.signal) process.kill(process.pid, result.signal);
  process.exit(result.status ?? 1);
}
