/**
 * An RSA key pair for tests: Vonage application keys are RSA 2048. Generating one takes tens of
 * milliseconds, so it is made once per test process and shared (test support only).
 */
import * as crypto from 'node:crypto';

export interface TestKeyPair {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  /** SPKI PEM. */
  publicKeyPem: string;
}

let memo: TestKeyPair | undefined;

export function testKeyPair(): TestKeyPair {
  memo ??= (() => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    return { privateKeyPem: privateKey, publicKeyPem: publicKey };
  })();
  return memo;
}
