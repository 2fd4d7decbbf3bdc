/**
 * The fake Conversation API of the bridge's tests: the sandbox's Vonage emulator
 * (src/sandbox/vonage/emulator.ts), by default narrowed to the surface the fixed-conversation tests
 * were written against: `POST /{v1|beta}/conversations/{id}/events` to any conversation id, RS256 JWT
 * checks, custom event validation, `script([...])` for failures. `surface: 'full'` gives the whole
 * API (conversations, users, members, duplicate-name errors) for per-user conversation mode.
 * One implementation serves the tests and the sandbox.
 */
import { startVonageEmulator, type VonageEmulator } from '../../src/sandbox/vonage/emulator';

export type { ScriptedResponse } from '../../src/sandbox/vonage/routes';
export type { RecordedEvent } from '../../src/sandbox/vonage/state';

export type FakeVonage = VonageEmulator;

export interface FakeVonageOptions {
  publicKeyPem: string;
  applicationId: string;
  /** Clock for token checks and timestamps, epoch ms; default `Date.now`. */
  now?: () => number;
  /** Default `events-only`. */
  surface?: 'full' | 'events-only';
}

export function startFakeVonage(options: FakeVonageOptions): Promise<FakeVonage> {
  return startVonageEmulator({ ...options, surface: options.surface ?? 'events-only' });
}
