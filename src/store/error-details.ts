/**
 * Errors as the store passes them on: for a log line, the parts worth reading; for a caller, a
 * fresh error in our words that keeps only the driver's `code`, since a driver's error may carry a
 * connection URL (and its password) in other fields.
 */

export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = codeOf(error);
  return { name: error.name, message: error.message, ...(code !== undefined ? { code } : {}) };
}

/** A new Error with `message` and, when `source` has a string `code` (e.g. `ECONNREFUSED`), that code. */
export function errorWithCode(message: string, source: unknown): Error {
  const clean = new Error(message);
  const code = codeOf(source);
  if (code !== undefined) (clean as Error & { code?: string }).code = code;
  return clean;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function codeOf(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}
