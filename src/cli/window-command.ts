/**
 * `wechat-bridge window <openid>`: whether a customer-service message can still reach a WeChat user,
 * as the bridge's reply-window tracker knows it (reply-window.ts), read from the bridge's store.
 */
import { DEFAULT_ACCOUNT_ID } from '../accounts';
import { createReplyWindowTracker, describeReplyWindow } from '../bridge/reply-window';
import { JSON_OPTION, type CommandSpec } from './command';
import { UsageError } from './errors';
import { openCliStore } from './store';

export const windowCommand: CommandSpec = {
  name: 'window',
  args: '<openid> [--account <id>] [--json]',
  summary: 'a WeChat user\'s reply window: until when, and how many free-form replies are left',
  details: [
    'Shows what the bridge knows of the user\'s customer-service window: a message from the user opens',
    'it for 48 hours and 5 replies (WECHAT_REPLY_WINDOW_HOURS, WECHAT_REPLIES_PER_MESSAGE), a follow,',
    'QR scan or menu click for 1 minute and 3. Outside of it only template messages and subscription',
    'notifications reach the user (an outbound event\'s `fallback`).',
    '',
    'Reads DATABASE_URL (default sqlite:./data/bridge.db) from the environment or ./.env, like the bridge.',
  ].join('\n'),
  options: {
    json: JSON_OPTION,
    account: { type: 'string', valueName: 'id', description: `the Official Account's id in the bridge (default ${DEFAULT_ACCOUNT_ID})` },
  },
  positionals: { min: 1, max: 1 },
  async run(args, context) {
    const openid = args.positionals[0]?.trim() ?? '';
    if (openid === '') throw new UsageError('whose window? give the user\'s openid', 'window');
    const account = typeof args.values.account === 'string' && args.values.account !== '' ? args.values.account : DEFAULT_ACCOUNT_ID;
    const store = await openCliStore(context.env, context.cwd);
    try {
      const window = await createReplyWindowTracker({ store, now: context.now }).current(account, openid);
      if (args.values.json) {
        context.print(`${JSON.stringify({ account, openid, reply_window: window }, null, 2)}\n`);
        return;
      }
      context.print(`${openid}: ${describeReplyWindow(window, context.now())}\n`);
    } finally {
      await store.close();
    }
  },
};
