/**
 * What the bridge needs from the outside world, as small interfaces. The Vonage client
 * satisfies `ConversationBackend` structurally: when Vonage's Conversation API goes away,
 * another backend implements these two lines and nothing else in the bridge changes.
 */

export interface ConversationEvent {
  type: string;
  body: Record<string, unknown>;
  /** A member id, when the backend wants the event attributed to one. */
  from?: string;
}

export interface ConversationBackend {
  createEvent(conversationId: string, event: ConversationEvent): Promise<{ id: string }>;
}

/** Job kinds, one handler each. */
export const JOB_DELIVER_TO_VONAGE = 'deliver-to-vonage';

/** The payload of a `deliver-to-vonage` job: one event, ready to post. */
export interface DeliverToVonagePayload {
  conversationId: string;
  event: ConversationEvent;
}
