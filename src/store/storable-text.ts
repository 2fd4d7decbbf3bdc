/**
 * What both stores can keep: text without NUL characters or unpaired UTF-16 surrogates, in JSON
 * nested no deeper than `MAX_STORED_DEPTH`.
 *
 * PostgreSQL text and jsonb reject NUL (`\u0000`) and unpaired surrogates outright; neither can
 * come from a well-formed sender (XML 1.0 excludes both from its characters, and UTF-8 cannot encode
 * a lone surrogate). Deep JSON overflows the stack of JSON.stringify and of the stores' JSON parsers
 * (SQLite's JSON functions stop at 1000 levels). The webhooks refuse such input with a 400 before
 * anything is stored, on either store, so that the sender stops resending it.
 */

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Far deeper than any WeChat message (flat) or Vonage event body (a few levels) ever is. */
export const MAX_STORED_DEPTH = 64;

export function isStorableText(value: string): boolean {
  return !value.includes('\u0000') && !UNPAIRED_SURROGATE.test(value);
}

/** `value` with NUL characters and unpaired surrogates replaced by U+FFFD (for text we write ourselves, e.g. errors). */
export function toStorableText(value: string): string {
  return value.replaceAll('\u0000', '\uFFFD').replace(new RegExp(UNPAIRED_SURROGATE.source, 'g'), '\uFFFD');
}

/**
 * Why `value` (parsed JSON, or any plain object of strings) cannot be stored, or undefined when it
 * can: the first key or string with unstorable text, or nesting past `maxDepth`. Iterative, so that
 * hostile depth cannot overflow the stack here either.
 */
export function unstorableReason(value: unknown, maxDepth = MAX_STORED_DEPTH): string | undefined {
  const pending: Array<{ item: unknown; depth: number }> = [{ item: value, depth: 0 }];
  while (pending.length > 0) {
    const { item, depth } = pending.pop()!;
    if (typeof item === 'string') {
      if (!isStorableText(item)) return 'text contains a NUL character or an unpaired surrogate';
      continue;
    }
    if (typeof item !== 'object' || item === null) continue;
    if (depth >= maxDepth) return `nested deeper than ${maxDepth} levels`;
    if (Array.isArray(item)) {
      for (const element of item) pending.push({ item: element, depth: depth + 1 });
      continue;
    }
    for (const [key, element] of Object.entries(item)) {
      if (!isStorableText(key)) return 'a key contains a NUL character or an unpaired surrogate';
      pending.push({ item: element, depth: depth + 1 });
    }
  }
  return undefined;
}
