/**
 * node:sqlite rows into the shared row shapes (../rows.ts), each column checked for the type the
 * schema gives it: a row that does not match is an error here, never a wrong value further on.
 */
import type { SQLOutputValue } from 'node:sqlite';
import type { ClaimedJobRow, DeadLetterRow, KindDepthRow, MappingRow, SendAllowanceRow, UploadedMediaRow } from '../rows';

export type SqliteRow = Record<string, SQLOutputValue>;

export function text(value: SQLOutputValue | undefined): string {
  if (typeof value !== 'string') throw new Error(`expected a text column, got ${typeof value}`);
  return value;
}

export function int(value: SQLOutputValue | undefined): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  throw new Error(`expected an integer column, got ${typeof value}`);
}

export function textOrNull(value: SQLOutputValue | undefined): string | null {
  return value === null ? null : text(value);
}

/** Booleans are stored as 0 and 1. */
export function flag(value: SQLOutputValue | undefined): boolean {
  return int(value) === 1;
}

export function claimedJobRow(row: SqliteRow): ClaimedJobRow {
  return {
    seq: String(row.seq),
    kind: text(row.kind),
    order_key: text(row.order_key),
    payload: text(row.payload),
    attempts: int(row.attempts),
    created_at: int(row.created_at),
    last_error: textOrNull(row.last_error),
    interrupted: flag(row.interrupted),
  };
}

export function deadLetterRow(row: SqliteRow): DeadLetterRow {
  return {
    id: String(row.id),
    kind: text(row.kind),
    order_key: text(row.order_key),
    payload: text(row.payload),
    attempts: int(row.attempts),
    created_at: int(row.created_at),
    dead_at: int(row.dead_at),
    reason: text(row.reason),
  };
}

export function mappingRow(row: SqliteRow): MappingRow {
  return {
    openid: text(row.openid),
    conversation_id: text(row.conversation_id),
    user_id: textOrNull(row.user_id),
    member_id: textOrNull(row.member_id),
    created_at: int(row.created_at),
    updated_at: int(row.updated_at),
  };
}

export function uploadedMediaRow(row: SqliteRow): UploadedMediaRow {
  return { key: text(row.key), media_id: text(row.media_id), type: text(row.type), expires_at: int(row.expires_at) };
}

export function sendAllowanceRow(row: SqliteRow): SendAllowanceRow {
  return {
    scope: text(row.scope),
    kind: text(row.kind),
    opened_at: int(row.opened_at),
    closes_at: int(row.closes_at),
    remaining: int(row.remaining),
  };
}

export function kindDepthRow(row: SqliteRow): KindDepthRow {
  return { kind: text(row.kind), depth: int(row.depth), oldest: int(row.oldest) };
}
