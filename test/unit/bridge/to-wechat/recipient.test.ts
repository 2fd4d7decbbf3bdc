/** Who an outbound event is for: `to` in a shared conversation, the conversation's own user in per-user mode. */
import { recipientFromBody, recipientFromConversation } from '../../../../src/bridge/to-wechat/recipient';
import { SqliteStore } from '../../../../src/store/sqlite/store';

describe('who an outbound event is for', () => {
  test('fixed mode: `to`, required', async () => {
    await expect(recipientFromBody({ conversationId: 'CON-1', body: { to: 'oUser' } })).resolves.toEqual({ ok: true, openid: 'oUser' });
    await expect(recipientFromBody({ conversationId: 'CON-1', body: { to: ' ' } })).resolves.toMatchObject({ ok: false, errorCode: 'missing_to' });
  });

  test('per-user mode: the conversation\'s user; `to` optional but never someone else; unknown conversations refused', async () => {
    const store = SqliteStore.open(':memory:');
    try {
      await store.saveConversationMapping({ openid: 'oUser', conversationId: 'CON-1' });
      const recipientOf = recipientFromConversation(store);
      await expect(recipientOf({ conversationId: 'CON-1', body: {} })).resolves.toEqual({ ok: true, openid: 'oUser', accountId: 'default' });
      await expect(recipientOf({ conversationId: 'CON-1', body: { to: 'oUser' } })).resolves.toEqual({ ok: true, openid: 'oUser', accountId: 'default' });
      await expect(recipientOf({ conversationId: 'CON-1', body: { to: 'oOther' } })).resolves.toMatchObject({ ok: false, errorCode: 'recipient_mismatch' });
      await expect(recipientOf({ conversationId: 'CON-2', body: { to: 'oUser' } })).resolves.toMatchObject({
        ok: false,
        errorCode: 'unknown_conversation',
        errorMessage: expect.stringContaining('CON-2'),
      });
    } finally {
      await store.close();
    }
  });
});
