/**
 * Loads the Vonage application's private key from configuration.
 *
 * `VONAGE_PRIVATE_KEY` arrives in many shapes: a PEM file path, the PEM text itself, the PEM text with
 * its newlines written as literal `\n` (the usual way to fit it on one `.env` line), wrapped in quotes by a
 * deployment tool, or with its line breaks collapsed to spaces. All of these are accepted; what comes
 * out is one normalised PEM block and a parsed `KeyObject` that is known to be an RSA private key, so a
 * bad key is reported once at start-up instead of on the first signed request.
 *
 * Error messages are short reasons for the config validator to print after the variable name; they name
 * at most the file path, never the key material.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export interface LoadedPrivateKey {
  /** One normalised PEM block (64-column base64, trailing newline). */
  pem: string;
  key: crypto.KeyObject;
}

/** The part of `fs.readFileSync` used here, so tests can inject a fake file system. */
export type ReadFileSync = (path: string, encoding: 'utf8') => string;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

export function loadVonagePrivateKey(value: string, readFile: ReadFileSync = fs.readFileSync): LoadedPrivateKey {
  const text = unwrap(value);
  if (text === '') return fail('the value is empty');
  if (text.includes('-----BEGIN')) return parsePem(unescapeNewlines(text), '');

  const content = readKeyFile(text, readFile);
  return parsePem(unescapeNewlines(content.trim()), `file "${text}": `);
}

/** Strips surrounding whitespace and one pair of matching quotes. */
function unwrap(value: string): string {
  const text = value.trim();
  const first = text[0];
  if (text.length >= 2 && (first === '"' || first === "'") && text.endsWith(first)) return text.slice(1, -1).trim();
  return text;
}

/** Literal `\n` escapes become newlines; only applied to PEM text, since `\n` is legal in a Windows path. */
function unescapeNewlines(text: string): string {
  return text.replace(/\\r/g, '').replace(/\\n/g, '\n');
}

function readKeyFile(path: string, readFile: ReadFileSync): string {
  try {
    return readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    // A value that is neither PEM nor an existing file might be key material without its PEM armour
    // (base64 pasted on its own): never echo something that looks like that back into a log.
    if (!looksLikePath(path)) return fail('not a PEM private key, nor the path of a readable file');
    if (code === 'ENOENT') return fail(`file "${path}" not found`);
    if (code === 'EISDIR') return fail(`file "${path}" is a directory`);
    if (code === 'EACCES' || code === 'EPERM') return fail(`file "${path}" cannot be read (permission denied)`);
    return fail(`file "${path}" cannot be read${code ? ` (${code})` : ''}`);
  }
}

function looksLikePath(value: string): boolean {
  return value.length <= 512 && !/[\n\r]/.test(value) && !/^[A-Za-z0-9+/=]{48,}$/.test(value);
}

/** `where` prefixes every reason: empty for PEM text given directly, `file "…": ` for a file. */
function parsePem(text: string, where: string): LoadedPrivateKey {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const privateBlock = blocks.find((b) => (b[1] ?? '').endsWith('PRIVATE KEY'));
  if (!privateBlock) {
    if (blocks.some((b) => /PUBLIC KEY|CERTIFICATE/.test(b[1] ?? ''))) {
      return fail(`${where}holds a public key or certificate, not a PEM private key`);
    }
    return fail(`${where}not a PEM private key`);
  }
  const label = privateBlock[1] ?? '';
  const inner = privateBlock[2] ?? '';
  if (label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,\s*ENCRYPTED/.test(inner)) {
    return fail(`${where}the private key is encrypted; provide it without a passphrase`);
  }
  if (/^EC |^DSA |OPENSSH/.test(label)) {
    return fail(`${where}key is ${label.replace(/ ?PRIVATE KEY$/, '') || 'not RSA'}, expected RSA`);
  }
  // Rebuild the block from its base64 alone, so collapsed or re-wrapped line breaks do not matter.
  const base64 = inner.replace(/\s+/g, '');
  if (base64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return fail(`${where}not a PEM private key`);
  const lines = base64.match(/.{1,64}/g) ?? [];
  const pem = `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;

  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // OpenSSL's own message is not useful to an operator and is deliberately not passed on.
    return fail(`${where}not a PEM private key (it cannot be parsed)`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    return fail(`${where}key is ${(key.asymmetricKeyType ?? 'unknown').toUpperCase()}, expected RSA`);
  }
  return { pem, key };
}

function fail(reason: string): never {
  throw new Error(reason);
}
