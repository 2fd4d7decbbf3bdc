/**
 * The fake Conversation API of the bridge's tests: the sandbox's Vonage emulator
 * (src/sandbox/vonage-emulator.ts), narrowed to the surface these tests were written against:
 * `POST /{v1|beta}/conversations/{id}/events` to any conversation id, RS256 JWT checks, custom event
 * validation, `script([...])` for failures. One implementation serves the tests and the sandbox.
 */
import { startVonageEmulator, type VonageEmulator } from '../../src/sandbox/vonage-emulator';

export type { RecordedEvent, ScriptedResponse } from '../../src/sandbox/vonage-emulator';

export type FakeVonage = VonageEmulator;

export interface FakeVonageOptions {
  publicKeyPem: string;
  applicationId: string;
  /** Clock for token checks and timestamps, epoch ms; default `Date.now`. */
  now?: () => number;
}

export function startFakeVonage(options: FakeVonageOptions): Promise<FakeVonage> {
  return startVonageEmulator({ ...options, surface: 'events-only' });
}
