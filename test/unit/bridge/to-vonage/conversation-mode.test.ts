/** Fixed or per-user conversations, per account. */
import {
  conversationModeOf,
  describeConversationMode,
  inboundTargetOf,
  routesConversations,
} from '../../../../src/bridge/to-vonage/conversation-mode';

const fixed = { id: 'default', appId: 'wx1', conversationId: 'CON-1' };
const perUser = { id: 'sales', appId: 'wx2', conversationId: undefined };

describe('conversation mode', () => {
  test('an account with a conversation id is fixed; one without is per-user', () => {
    expect(conversationModeOf(fixed)).toBe('fixed');
    expect(conversationModeOf(perUser)).toBe('per-user');
  });

  test('the bridge routes conversations as soon as one account is per-user', () => {
    expect(routesConversations([fixed])).toBe(false);
    expect(routesConversations([fixed, perUser])).toBe(true);
    expect(routesConversations([perUser])).toBe(true);
  });

  test("inbound messages go to the account's conversation, or to the sender's own (undefined)", () => {
    expect(inboundTargetOf(fixed)).toEqual({ conversationId: 'CON-1', accountId: 'default' });
    expect(inboundTargetOf(perUser)).toEqual({ conversationId: undefined, accountId: 'sales' });
  });

  test('the start-up line names the account and its AppID, and a fixed conversation', () => {
    expect(describeConversationMode(fixed)).toEqual({
      fields: { account: 'default', appId: 'wx1', conversationId: 'CON-1' },
      message: 'fixed conversation: every WeChat user of the account in one conversation',
    });
    expect(describeConversationMode(perUser)).toEqual({
      fields: { account: 'sales', appId: 'wx2' },
      message: 'per-user conversations: each WeChat user of the account gets a Vonage conversation of their own',
    });
  });
});
