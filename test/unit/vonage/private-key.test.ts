import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadVonagePrivateKey } from '../../../src/vonage/private-key';
import { testKeyPair } from '../../support/keys';

const { privateKeyPem, publicKeyPem } = testKeyPair();

/** Every 16-character window of the key's base64: none may appear in an error message. */
function keyFragments(pem: string): string[] {
  const base64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const fragments: string[] = [];
  for (let i = 0; i + 16 <= base64.length; i += 16) fragments.push(base64.slice(i, i + 16));
  return fragments;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

function expectRejected(value: string, reason: RegExp, readFile?: (p: string, e: 'utf8') => string): void {
  const error = errorOf(() => loadVonagePrivateKey(value, readFile));
  expect(error.message).toMatch(reason);
  for (const fragment of keyFragments(value)) expect(error.message).not.toContain(fragment);
  expect(error.message).not.toMatch(/-----BEGIN/);
}

function expectSameRsaKey(loaded: { pem: string; key: crypto.KeyObject }): void {
  expect(loaded.key.asymmetricKeyType).toBe('rsa');
  expect(loaded.key.type).toBe('private');
  expect(loaded.pem).toMatch(/^-----BEGIN (RSA )?PRIVATE KEY-----\n/);
  const signature = crypto.sign('sha256', Buffer.from('x'), loaded.key);
  expect(crypto.verify('sha256', Buffer.from('x'), publicKeyPem, signature)).toBe(true);
}

describe('loadVonagePrivateKey', () => {
  test('PEM text, PKCS#8', () => {
    const loaded = loadVonagePrivateKey(privateKeyPem);
    expectSameRsaKey(loaded);
    expect(loaded.pem).toBe(privateKeyPem);
  });

  test('PEM text, PKCS#1', () => {
    const pkcs1 = crypto.createPrivateKey(privateKeyPem).export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(pkcs1).toContain('BEGIN RSA PRIVATE KEY');
    expectSameRsaKey(loadVonagePrivateKey(pkcs1));
  });

  test('one line with literal \\n escapes, in quotes, with whitespace around', () => {
    const oneLine = privateKeyPem.trim().replace(/\n/g, '\\n');
    expect(oneLine).not.toContain('\n');
    expectSameRsaKey(loadVonagePrivateKey(oneLine));
    expectSameRsaKey(loadVonagePrivateKey(`  "${oneLine}"\n`));
    expectSameRsaKey(loadVonagePrivateKey(`'${oneLine}'`));
    expectSameRsaKey(loadVonagePrivateKey(privateKeyPem.replace(/\n/g, '\r\n')));
  });

  test('line breaks collapsed to spaces', () => {
    expectSameRsaKey(loadVonagePrivateKey(privateKeyPem.trim().replace(/\n/g, ' ')));
  });

  test('a path to a PEM file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vonage-key-'));
    try {
      const file = path.join(dir, 'private.key');
      fs.writeFileSync(file, privateKeyPem);
      expectSameRsaKey(loadVonagePrivateKey(file));
      expectSameRsaKey(loadVonagePrivateKey(` "${file}" `));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an injected reader; a Windows path keeps its backslashes', () => {
    const seen: string[] = [];
    const readFile = (p: string) => {
      seen.push(p);
      return privateKeyPem;
    };
    expectSameRsaKey(loadVonagePrivateKey('C:\\keys\\new.key', readFile));
    expect(seen).toEqual(['C:\\keys\\new.key']);
  });

  test('a missing file is named', () => {
    const missing = path.join(os.tmpdir(), 'no-such-dir-vonage', 'private.key');
    expect(errorOf(() => loadVonagePrivateKey(missing)).message).toBe(`file "${missing}" not found`);
  });

  test('a file that is not a key', () => {
    const readFile = () => 'hello';
    expect(errorOf(() => loadVonagePrivateKey('/etc/key.pem', readFile)).message).toBe(
      'file "/etc/key.pem": not a PEM private key',
    );
  });

  test('EC keys are rejected (PKCS#8 and SEC1), as is Ed25519', () => {
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    expectRejected(ec.export({ type: 'pkcs8', format: 'pem' }).toString(), /^key is EC, expected RSA$/);
    expectRejected(ec.export({ type: 'sec1', format: 'pem' }).toString(), /^key is EC, expected RSA$/);
    const ed = crypto.generateKeyPairSync('ed25519').privateKey;
    expectRejected(ed.export({ type: 'pkcs8', format: 'pem' }).toString(), /^key is ED25519, expected RSA$/);
  });

  test('garbage and damaged keys are rejected without echoing them', () => {
    expectRejected('', /empty/);
    expectRejected('   ', /empty/);
    expectRejected('-----BEGIN PRIVATE KEY-----\nnot base64 !!\n-----END PRIVATE KEY-----', /not a PEM private key/);
    const body = privateKeyPem.split('\n').slice(1, -2);
    const truncated = ['-----BEGIN PRIVATE KEY-----', ...body.slice(0, 10), '-----END PRIVATE KEY-----'].join('\n');
    expectRejected(truncated, /not a PEM private key/);
    expectRejected(privateKeyPem.replace('-----END PRIVATE KEY-----', ''), /not a PEM private key/);
    expectRejected(publicKeyPem, /public key or certificate/);
  });

  test('armourless base64 that is not a file is not echoed back', () => {
    const base64 = privateKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    expectRejected(base64, /^not a PEM private key, nor the path of a readable file$/);
  });

  test('an encrypted key asks for the unencrypted one', () => {
    const encrypted = crypto
      .createPrivateKey(privateKeyPem)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' })
      .toString();
    expectRejected(encrypted, /encrypted/);
  });
});
