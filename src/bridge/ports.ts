/**
 * What the bridge needs from the outside world, as small interfaces. The Vonage client
 * satisfies `ConversationBackend` structurally: when Vonage's Conversation API goes away,
 * another backend implements these few lines and nothing else in the bridge changes.
 */

export interface ConversationEvent {
  type: string;
  body: Record<string, unknown>;
  /** A member id, when the backend wants the event attributed to one. */
  from?: string;
}

export interface ConversationBackend {
  createEvent(conversationId: string, event: ConversationEvent): Promise<{ id: string }>;
  /**
   * A conversation's events, newest first (or oldest first from `startId` with `order: 'asc'`), a
   * page at a time: to tell whether a post that got no answer went through. `timestamp` is epoch ms.
   */
  listRecentEvents(
    conversationId: string,
    options?: { pageSize?: number; eventType?: string; cursor?: string; startId?: string; order?: 'asc' | 'desc' },
  ): Promise<{
    events: Array<{ id: string; type: string; body: Record<string, unknown>; timestamp: number | undefined }>;
    nextCursor: string | undefined;
  }>;
}

/** A page of a list, with the cursor of the next page (undefined on the last). */
export interface Page<T> {
  items: T[];
  nextCursor: string | undefined;
}

/**
 * What per-user conversation mode needs from the backend: conversations, users and members, made
 * once per WeChat user. Creates report a taken name as a PermanentError whose `code` says so (409);
 * the lookups let the caller find what an earlier, interrupted run already made.
 */
export interface ConversationDirectory {
  createConversation(input: { name: string; displayName?: string; properties?: Record<string, unknown> }): Promise<{ id: string }>;
  listConversations(options: { pageSize?: number; cursor?: string; order?: 'asc' | 'desc' }): Promise<Page<{ id: string; name: string }>>;
  createUser(input: { name: string; displayName?: string }): Promise<{ id: string }>;
  findUserByName(name: string): Promise<{ id: string } | undefined>;
  createMember(conversationId: string, input: { userId: string }): Promise<{ id: string }>;
  listMembers(conversationId: string, options: { pageSize?: number; cursor?: string }): Promise<Page<{ id: string; userId: string | undefined }>>;
}
