/**
 * Checks shared by both store implementations for conversation mappings (values in, error out).
 */
import { isStorableText } from './storable-text';
import type { ConversationMappingUpdate } from './store';

const nonEmpty = (value: unknown): value is string => typeof value === 'string' && value !== '';

/**
 * Throws a TypeError for an update no store should accept (empty ids, wrong types), and with
 * `refuseUnstorableText` for ids the database cannot hold (NUL characters, unpaired surrogates).
 */
export function checkMappingUpdate(update: ConversationMappingUpdate, options: { refuseUnstorableText?: boolean } = {}): void {
  if (!nonEmpty(update.openid)) throw new TypeError('conversation mapping: openid must be a non-empty string');
  if (!nonEmpty(update.conversationId)) throw new TypeError('conversation mapping: conversationId must be a non-empty string');
  if (update.userId !== undefined && !nonEmpty(update.userId)) throw new TypeError('conversation mapping: userId must be a non-empty string');
  if (update.memberId !== undefined && !nonEmpty(update.memberId)) {
    throw new TypeError('conversation mapping: memberId must be a non-empty string');
  }
  if (!options.refuseUnstorableText) return;
  for (const value of [update.openid, update.conversationId, update.userId, update.memberId]) {
    if (value !== undefined && !isStorableText(value)) {
      throw new TypeError('conversation mapping ids must not contain NUL characters or unpaired surrogates');
    }
  }
}
