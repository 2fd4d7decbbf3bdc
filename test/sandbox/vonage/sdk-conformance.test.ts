/**
 * The Vonage emulator as the official Node SDK sees it: `@vonage/conversations` and `@vonage/users`
 * (with `@vonage/auth`, which mints RS256 application tokens with `@vonage/jwt`) create a
 * conversation, a user, a member and a custom event and read them back, a documented limit is
 * refused in Vonage's error shape, and `@vonage/jwt`'s `verifySignature` accepts the emulator's
 * signed RTC callbacks. No bridge code on either side.
 */
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startVonageEmulator, type VonageEmulator } from '../../../src/sandbox/vonage/emulator';
import { testKeyPair } from '../../support/keys';
import { waitFor } from '../../support/wait';

const APPLICATION_ID = '3c9a5b1e-0d4f-4a8e-9b6c-1f2e3d4c5b6a';
const SECRET = 'emulator-signature-secret-0123456789';
const DRIVER = path.join(__dirname, '..', '..', 'support', 'vonage-sdk-driver.cjs');

/** What the SDK driver prints: what the SDK made of each answer (vonage-sdk-driver.cjs). */
interface DriverOutput {
  conversation: { id: string };
  readConversation: unknown;
  user: { id: string };
  member: { id: string };
  members: { members: Array<{ id: string }> };
  event: { id: number };
  readEvent: unknown;
  tooLong: unknown;
  verified: Array<{ withSecret: boolean; withAnother: boolean }>;
}

function runDriver(input: unknown): Promise<DriverOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DRIVER], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout) as DriverOutput) : reject(new Error(`SDK driver failed:\n${stderr}`))));
    child.stdin.end(JSON.stringify(input));
  });
}

describe('the Vonage emulator through the official SDK', () => {
  let vonage: VonageEmulator;
  let eventUrl: http.Server;
  const callbacks: Array<{ authorization: string | undefined; type: string }> = [];

  beforeAll(async () => {
    eventUrl = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        callbacks.push({ authorization: req.headers.authorization, type: (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string }).type });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => eventUrl.listen(0, '127.0.0.1', resolve));
    vonage = await startVonageEmulator({
      publicKeyPem: testKeyPair().publicKeyPem,
      applicationId: APPLICATION_ID,
      signatureSecret: SECRET,
      rtcEventUrl: `http://127.0.0.1:${(eventUrl.address() as AddressInfo).port}/rtcEvent`,
    });
  });
  afterAll(async () => {
    await vonage.close();
    await new Promise((resolve) => eventUrl.close(resolve));
  });

  test('conversation, user, member and custom event round-trip; limits refused; callbacks verify', async () => {
    const input = {
      apiHost: new URL(vonage.baseUrl).origin,
      applicationId: APPLICATION_ID,
      privateKey: testKeyPair().privateKeyPem,
      conversationName: `sdk-${crypto.randomUUID()}`,
      userName: `sdk-user-${crypto.randomUUID()}`,
      signatureSecret: SECRET,
      callbacks: [] as string[],
    };
    const first = await runDriver(input);
    expect(first.conversation.id).toMatch(/^CON-/);
    expect(first.readConversation).toMatchObject({ id: first.conversation.id, name: input.conversationName, displayName: 'Through the SDK' });
    expect(first.user.id).toMatch(/^USR-/);
    expect(first.member.id).toMatch(/^MEM-/);
    expect(first.members.members.map((m: { id: string }) => m.id)).toContain(first.member.id);
    expect(typeof first.event.id).toBe('number');
    expect(first.readEvent).toMatchObject({ id: first.event.id, type: 'custom:wechat:message', body: { direction: 'outbound', content: 'hello from the SDK' } });
    expect(first.tooLong).toMatchObject({
      refused: true,
      status: 400,
      body: { code: 'http:error:validation-fail', invalid_parameters: [{ name: 'display_name' }] },
    });

    // conversation:created, member:joined and the custom event were dispatched, signed.
    await waitFor('signed callbacks', () => callbacks.length >= 3);
    const verified = await runDriver({
      ...input,
      conversationName: `sdk-${crypto.randomUUID()}`,
      userName: `sdk-user-${crypto.randomUUID()}`,
      callbacks: callbacks.map((c) => c.authorization!),
    });
    expect(verified.verified.length).toBeGreaterThanOrEqual(3);
    expect(verified.verified.every((v: { withSecret: boolean; withAnother: boolean }) => v.withSecret && !v.withAnother)).toBe(true);
  });
});
