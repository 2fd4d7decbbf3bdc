import * as crypto from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createApplicationTokenSource } from '../../../src/vonage/jwt';
import { testKeyPair } from '../../support/keys';

const APPLICATION_ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);

function clock(start = T0) {
  let ms = start;
  return { now: () => ms, advanceSeconds: (s: number) => (ms += s * 1000) };
}

describe('createApplicationTokenSource', () => {
  const { privateKeyPem, publicKeyPem } = testKeyPair();
  const privateKey = crypto.createPrivateKey(privateKeyPem);

  test('signs RS256 with exactly application_id, iat, jti, exp and typ JWT', () => {
    const c = clock();
    const token = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, now: c.now }).token();

    const decoded = jwt.decode(token, { complete: true });
    expect(decoded?.header).toEqual({ alg: 'RS256', typ: 'JWT' });
    const claims = jwt.verify(token, publicKeyPem, { algorithms: ['RS256'], clockTimestamp: T0 / 1000 }) as jwt.JwtPayload;
    expect(Object.keys(claims).sort()).toEqual(['application_id', 'exp', 'iat', 'jti']);
    expect(claims.application_id).toBe(APPLICATION_ID);
    expect(claims.iat).toBe(T0 / 1000);
    expect(claims.exp).toBe(T0 / 1000 + 900);
    expect(claims.jti).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('a token does not verify with another key', () => {
    const token = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey }).token();
    const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    expect(() => jwt.verify(token, other, { algorithms: ['RS256'] })).toThrow(/invalid signature/);
  });

  test('reuses the token until refreshBeforeSeconds before exp, then mints a new one with a new jti', () => {
    const c = clock();
    const source = createApplicationTokenSource({
      applicationId: APPLICATION_ID,
      privateKey,
      ttlSeconds: 600,
      refreshBeforeSeconds: 60,
      now: c.now,
    });
    const first = source.token();
    c.advanceSeconds(539);
    expect(source.token()).toBe(first);

    c.advanceSeconds(1); // 540 s: 60 s before exp
    const second = source.token();
    expect(second).not.toBe(first);
    const a = jwt.decode(first) as jwt.JwtPayload;
    const b = jwt.decode(second) as jwt.JwtPayload;
    expect(b.jti).not.toBe(a.jti);
    expect(b.iat).toBe(T0 / 1000 + 540);
    expect(b.exp).toBe(T0 / 1000 + 540 + 600);
    expect(source.token()).toBe(second);
  });

  test('sources are independent: no shared cache', () => {
    const c = clock();
    const one = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, now: c.now });
    const two = createApplicationTokenSource({ applicationId: 'other-app', privateKey, now: c.now });
    expect((jwt.decode(two.token()) as jwt.JwtPayload).application_id).toBe('other-app');
    expect((jwt.decode(one.token()) as jwt.JwtPayload).application_id).toBe(APPLICATION_ID);
  });

  test('exp is never more than 24 h after iat', () => {
    const c = clock();
    const token = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, ttlSeconds: 86_400, now: c.now }).token();
    const claims = jwt.decode(token) as jwt.JwtPayload;
    expect(claims.exp! - claims.iat!).toBe(86_400);
    expect(() => createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, ttlSeconds: 86_401 })).toThrow(RangeError);
    expect(() => createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, ttlSeconds: 10 })).toThrow(RangeError);
    expect(() =>
      createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey, ttlSeconds: 900, refreshBeforeSeconds: 900 }),
    ).toThrow(RangeError);
  });

  test('accepts PEM text and rejects a missing application id or a non-RSA key', () => {
    const token = createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey: privateKeyPem }).token();
    expect(() => jwt.verify(token, publicKeyPem, { algorithms: ['RS256'] })).not.toThrow();

    expect(() => createApplicationTokenSource({ applicationId: ' ', privateKey })).toThrow(/application id/);
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    expect(() => createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey: ec })).toThrow(/RSA/);
    expect(() => createApplicationTokenSource({ applicationId: APPLICATION_ID, privateKey: 'garbage' })).toThrow(
      /not a PEM private key/,
    );
  });
});
