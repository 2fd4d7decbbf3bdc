/**
 * The raw traffic the emulators see, for the console's side panel and for tests: every push WeChat
 * makes to the bridge, every call to the WeChat API, every call to the Conversation API and every
 * event Vonage dispatches to the application.
 *
 * Entries are what went over the wire, with the secrets blanked (access tokens in URLs, the app
 * secret in a stable_token body, bearer tokens): sandbox credentials are throwaway, but a developer
 * copying from the panel must never learn to paste secrets around.
 */
import { Listeners } from './listeners';

/** Which wire an entry was seen on. */
export type TrafficChannel =
  /** WeChat's servers → the bridge's `/weChatEvent`. */
  | 'wechat-push'
  /** Someone (the bridge) → the WeChat API (`/cgi-bin/...`). */
  | 'wechat-api'
  /** Someone (the bridge, or an agent with a user token) → the Conversation API. */
  | 'vonage-api'
  /** Vonage → the application's RTC `event_url` (the bridge's `/rtcEvent`). */
  | 'vonage-webhook';

export interface TrafficEntry {
  /** Increasing per recorder, from 1. */
  seq: number;
  /** Epoch ms when the request started. */
  at: number;
  channel: TrafficChannel;
  /** Who made the request, in words: `bridge`, `WeChat`, `Vonage`, `agent (user alex)`. */
  caller: string;
  method: string;
  /** Path and query, secrets blanked. */
  path: string;
  requestBody?: string;
  status?: number;
  responseBody?: string;
  /** A transport failure or a timeout instead of an answer. */
  error?: string;
  durationMs?: number;
  /** One line of context: "delivery 2 of 3", "safe mode; decrypted: …". */
  note?: string;
}

export type TrafficListener = (entry: TrafficEntry) => void;

export type TrafficInput = Omit<TrafficEntry, 'seq'>;

/** Bodies in the panel are clipped: a 10 MB image upload is summarised elsewhere, never shown. */
const MAX_BODY_CHARS = 8_000;

export interface TrafficRecorder {
  record(entry: TrafficInput): TrafficEntry;
  /** The most recent entries, oldest first. */
  recent(limit?: number): TrafficEntry[];
  /** Returns a function that removes the listener. */
  subscribe(listener: TrafficListener): () => void;
}

export function createTrafficRecorder(options: { keep?: number } = {}): TrafficRecorder {
  const keep = options.keep ?? 500;
  // Kept as received and blanked when read: a benchmark pushing thousands of requests through an
  // emulator with nobody watching pays for a slice, not for the regular expressions.
  const entries: TrafficEntry[] = [];
  const listeners = new Listeners<TrafficEntry>();
  let seq = 0;
  return {
    record(input) {
      seq += 1;
      const entry: TrafficEntry = {
        ...input,
        seq,
        ...(input.requestBody !== undefined ? { requestBody: clip(input.requestBody) } : {}),
        ...(input.responseBody !== undefined ? { responseBody: clip(input.responseBody) } : {}),
      };
      entries.push(entry);
      if (entries.length > keep * 2) entries.splice(0, entries.length - keep);
      if (listeners.size === 0) return entry;
      const shown = blanked(entry);
      listeners.emit(shown);
      return shown;
    },
    recent(limit = keep) {
      return entries.slice(-Math.min(limit, keep)).map(blanked);
    },
    subscribe(listener) {
      return listeners.add(listener);
    },
  };
}

function blanked(entry: TrafficEntry): TrafficEntry {
  return {
    ...entry,
    path: blankCredentials(entry.path),
    ...(entry.requestBody !== undefined ? { requestBody: blankCredentials(entry.requestBody) } : {}),
    ...(entry.responseBody !== undefined ? { responseBody: blankCredentials(entry.responseBody) } : {}),
  };
}

/**
 * Blanks access tokens, secrets and bearer tokens wherever they appear in text.
 *
 * Not the bridge's `scrubSecrets` (src/logger.ts), on purpose: that one cleans the bridge's own logs
 * and knows the bridge's secrets by value; this one blanks what any client sends an emulator, whose
 * secrets it cannot know, so it goes by where credentials travel, including the `secret` field of a
 * stable_token body that the bridge's scrubber has no reason to know. Everything else stays as it
 * went over the wire, and the marker is the panel's own lowercase `[redacted]`.
 */
function blankCredentials(text: string): string {
  return text
    .replace(/(access_token=)[^&\s"']+/gi, '$1[redacted]')
    .replace(/("(?:secret|access_token)"\s*:\s*")[^"]*(")/gi, '$1[redacted]$2')
    .replace(/(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*/g, '$1[redacted]');
}

/** Unlike the bridge's error-line clippers, says how much was left off: the panel shows bodies. */
function clip(text: string): string {
  return text.length <= MAX_BODY_CHARS ? text : `${text.slice(0, MAX_BODY_CHARS)}… (${text.length - MAX_BODY_CHARS} more characters)`;
}
