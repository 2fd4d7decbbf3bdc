/**
 * `npm start`: read `.env` (quietly) and the environment, refuse to start on any bad setting,
 * then run the bridge until SIGTERM / SIGINT.
 */
// First: on a Node.js too old for node:sqlite, one clear line instead of a stack trace.
import './require-node';
import dotenv from 'dotenv';
import { loadConfig } from './config';
import { chooseLogFormat, createLogger } from './logger';
import { configuredSecrets, startBridge } from './server';

async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  const result = loadConfig(process.env);
  if (!result.ok) {
    process.stderr.write(
      `wechat-conversation-bridge: cannot start, fix these settings (see example.env):\n${result.errors.map((e) => `  - ${e}`).join('\n')}\n`,
    );
    process.exit(1);
  }
  const { config } = result;
  const logger = createLogger({
    level: config.logLevel,
    format: chooseLogFormat(config.logFormat, process.stdout.isTTY === true, process.env.NODE_ENV),
    secrets: configuredSecrets(config),
  });
  if (!config.vonage.signatureSecret) {
    logger.warn('VONAGE_SIGNATURE_SECRET is not set: /rtcEvent accepts unsigned requests');
  }
  const bridge = await startBridge(config, logger);

  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    bridge.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`wechat-conversation-bridge: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
