#!/usr/bin/env node
/**
 * `wechat-bridge` (package.json `bin`; `npm run cli -- …` from a clone): the operator's command-line
 * tool. Settings come from `.env` (loaded quietly, the environment wins) and the environment, as for
 * the bridge. See `wechat-bridge --help`.
 */
// First: on a Node.js too old for node:sqlite, one clear line instead of a stack trace.
import '../require-node';
import { createInterface } from 'node:readline/promises';
import dotenv from 'dotenv';
import { runCli } from './run';

/** A y/N question on the terminal; only offered when both stdin and stderr are one. */
async function confirmOnTerminal(question: string): Promise<boolean> {
  const terminal = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await terminal.question(question)).trim());
  } finally {
    terminal.close();
  }
}

dotenv.config({ quiet: true });
void runCli(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
  confirm: process.stdin.isTTY && process.stderr.isTTY ? confirmOnTerminal : undefined,
}).then((code) => {
  // Not process.exit(): let stdout drain when it is a pipe.
  process.exitCode = code;
});
