/**
 * Imported first by every entry point (`dist/main.js`, `dist/cli/main.js`, `dist/sandbox/main.js`):
 * on a Node.js too old for `node:sqlite`, print one line and exit 1 before anything loads it.
 */
import { isSupportedNodeVersion, unsupportedNodeMessage } from './node-version';

if (!isSupportedNodeVersion(process.versions.node)) {
  process.stderr.write(`${unsupportedNodeMessage('wechat-conversation-bridge', process.versions.node)}\n`);
  process.exit(1);
}
