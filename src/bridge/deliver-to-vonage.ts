/**
 * The `deliver-to-vonage` job: post one prepared event to its conversation.
 *
 * Errors are already classified by the backend client (retryable / permanent); the worker
 * decides what to do with them. One job is one event, so a retry never re-posts a part that
 * already went through.
 */
import type { Job } from '../store/store';
import type { ConversationBackend, DeliverToVonagePayload } from './ports';

export function createDeliverToVonageHandler(deps: { backend: ConversationBackend }) {
  return async function deliverToVonage(job: Job): Promise<void> {
    const payload = job.payload as DeliverToVonagePayload;
    await deps.backend.createEvent(payload.conversationId, payload.event);
  };
}
