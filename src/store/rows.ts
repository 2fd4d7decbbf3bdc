/**
 * Rows as both stores read them back, and the values they stand for. Each backend decodes its
 * driver's row into these shapes (SQLite checks each column's type, PostgreSQL's casts give them);
 * what a row means is decided here once.
 */
import { compareJobIds } from './jobs';
import type { ConversationMapping, DeadLetter, Job, JobKind, QueueStats, SendAllowance, UploadedMedia } from './store';

/** A job as a claim returns it: `attempts` already counts this claim. */
export interface ClaimedJobRow {
  seq: string;
  kind: string;
  order_key: string;
  payload: string;
  attempts: number;
  created_at: number;
  last_error: string | null;
  interrupted: boolean;
}

/** The claimed jobs, oldest first, each with the claim's lease token. */
export function toClaimedJobs(rows: readonly ClaimedJobRow[], leaseToken: string): Job[] {
  return rows
    .map((row) => ({
      id: row.seq,
      kind: row.kind,
      orderKey: row.order_key,
      payload: JSON.parse(row.payload) as unknown,
      // The row already counts this claim; the job reports the attempts before it.
      attempts: row.attempts - 1,
      createdAt: row.created_at,
      lastError: row.last_error ?? undefined,
      leaseToken,
      interrupted: row.interrupted,
    }))
    .sort((a, b) => compareJobIds(a.id, b.id));
}

export interface DeadLetterRow {
  id: string;
  kind: string;
  order_key: string;
  payload: string;
  attempts: number;
  created_at: number;
  dead_at: number;
  reason: string;
}

export function toDeadLetter(row: DeadLetterRow): DeadLetter {
  return {
    id: row.id,
    kind: row.kind,
    orderKey: row.order_key,
    payload: JSON.parse(row.payload) as unknown,
    attempts: row.attempts,
    createdAt: row.created_at,
    deadAt: row.dead_at,
    reason: row.reason,
  };
}

export interface MappingRow {
  openid: string;
  conversation_id: string;
  user_id: string | null;
  member_id: string | null;
  created_at: number;
  updated_at: number;
}

export function toMapping(row: MappingRow): ConversationMapping {
  return {
    openid: row.openid,
    conversationId: row.conversation_id,
    userId: row.user_id ?? undefined,
    memberId: row.member_id ?? undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export interface UploadedMediaRow {
  key: string;
  media_id: string;
  type: string;
  expires_at: number;
}

export function toUploadedMedia(row: UploadedMediaRow): UploadedMedia {
  return { key: row.key, mediaId: row.media_id, type: row.type, expiresAt: row.expires_at };
}

export interface SendAllowanceRow {
  scope: string;
  kind: string;
  opened_at: number;
  closes_at: number;
  remaining: number;
}

export function toSendAllowance(row: SendAllowanceRow): SendAllowance {
  return { scope: row.scope, kind: row.kind, openedAt: row.opened_at, closesAt: row.closes_at, remaining: row.remaining };
}

/** The stored form of an allowance: whole milliseconds, never fewer than zero sends. */
export function toSendAllowanceRow(allowance: SendAllowance): SendAllowanceRow {
  return {
    scope: allowance.scope,
    kind: allowance.kind,
    opened_at: Math.floor(allowance.openedAt),
    closes_at: Math.floor(allowance.closesAt),
    remaining: Math.max(0, Math.floor(allowance.remaining)),
  };
}

/** Live jobs of one kind: how many, and when the oldest was stored. */
export interface KindDepthRow {
  kind: JobKind;
  depth: number;
  oldest: number;
}

export function toQueueStats(now: number, kinds: readonly KindDepthRow[], deadLetters: number): QueueStats {
  const depth: Record<JobKind, number> = {};
  let oldest = Number.POSITIVE_INFINITY;
  for (const each of kinds) {
    depth[each.kind] = each.depth;
    oldest = Math.min(oldest, each.oldest);
  }
  return { depth, oldestAgeMs: Number.isFinite(oldest) ? Math.max(0, now - oldest) : 0, deadLetters };
}

/** A remembered value as stored: JSON text (`null` for undefined). */
export function toStoredJson(value: unknown): string {
  return JSON.stringify(value ?? null);
}

export function fromStoredJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}
