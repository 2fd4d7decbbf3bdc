/**
 * `npm run sandbox`: the bridge with built-in WeChat and Vonage emulators and the console at `/`.
 * Needs no credentials and no network. `PORT` moves it (default 3000), `HOST` rebinds it (default
 * 127.0.0.1), `LOG_LEVEL` shows the bridge's logs (default error: the expected refusals the console
 * demonstrates, such as 45015, would otherwise fill the terminal), `LOG_FORMAT` picks json or pretty
 * (default: pretty on a terminal). Ctrl-C stops everything and
 * deletes the throwaway store.
 */
// First: on a Node.js too old for node:sqlite, one clear line instead of a stack trace.
import '../require-node';
import { chooseLogFormat, createLogger, LOG_FORMATS, type LogFormat } from '../logger';
import { LOG_LEVELS } from '../config';
import { startSandbox } from './sandbox';

async function main(): Promise<void> {
  const port = process.env.PORT?.trim() ? Number(process.env.PORT) : 3000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
  }
  const level = process.env.LOG_LEVEL?.trim() || 'error';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const format = process.env.LOG_FORMAT?.trim() || undefined;
  if (format && !(LOG_FORMATS as readonly string[]).includes(format)) throw new Error(`LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}`);
  const host = process.env.HOST?.trim() || '127.0.0.1';

  const logger = createLogger({
    level,
    format: chooseLogFormat(format as LogFormat | undefined, process.stdout.isTTY === true, process.env.NODE_ENV),
  });
  const sandbox = await startSandbox({ port, host, logger });
  process.stdout.write(
    `Sandbox ready: open ${sandbox.url}\n` +
      `  The bridge between emulated WeChat and Vonage on loopback: nothing leaves this machine. Ctrl-C stops it.\n` +
      `  Throwaway store: ${sandbox.databasePath} (deleted when the sandbox stops)\n`,
  );

  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('Sandbox stopping…\n');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    sandbox.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`sandbox: stop failed: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    code === 'EADDRINUSE'
      ? `sandbox: port ${process.env.PORT?.trim() || 3000} is in use; start it elsewhere with PORT=3001 npm run sandbox\n`
      : `sandbox: failed to start: ${message}\n`,
  );
  process.exit(1);
});
