import { isMediaId, MEDIA_LINK_MAX_TTL_MS, mediaLink, mediaLinkKey, verifyMediaLink } from '../../../../src/bridge/media/links';

const T0 = 1_700_000_000_000;
const key = mediaLinkKey({ appSecret: 'app-secret-0123456789' });
const MEDIA_ID = 'u9Q0Dk2hPyKqX_VNw-0123456789abcdefABCDEF';

/** The parts the route reads from a link. */
function partsOf(link: string): { mediaId: string; expires: unknown; signature: unknown } {
  const url = new URL(link);
  return {
    mediaId: decodeURIComponent(url.pathname.split('/').pop()!),
    expires: url.searchParams.get('expires') ?? undefined,
    signature: url.searchParams.get('signature') ?? undefined,
  };
}

describe('signed media links', () => {
  test('a link is PUBLIC_URL/media/<id> with expires and signature, and verifies until it expires', () => {
    const link = mediaLink('https://bridge.example.com/', key, MEDIA_ID, T0 + 60_000);
    expect(link).toMatch(new RegExp(`^https://bridge\\.example\\.com/media/${MEDIA_ID}\\?expires=${(T0 + 60_000) / 1000}&signature=[\\w-]{43}$`));
    expect(verifyMediaLink(key, partsOf(link), T0)).toEqual({ ok: true, expiresAtMs: T0 + 60_000 });
    expect(verifyMediaLink(key, partsOf(link), T0 + 59_999)).toMatchObject({ ok: true });
    expect(verifyMediaLink(key, partsOf(link), T0 + 60_000)).toEqual({ ok: false, reason: 'expired' });
  });

  test('another media id, a longer expiry or another key is forged', () => {
    const parts = partsOf(mediaLink('https://b.example', key, MEDIA_ID, T0 + 60_000));
    expect(verifyMediaLink(key, { ...parts, mediaId: `${MEDIA_ID}x` }, T0)).toEqual({ ok: false, reason: 'forged' });
    expect(verifyMediaLink(key, { ...parts, expires: String((T0 + 600_000) / 1000) }, T0)).toEqual({ ok: false, reason: 'forged' });
    expect(verifyMediaLink(mediaLinkKey({ appSecret: 'another-secret-value' }), parts, T0)).toEqual({ ok: false, reason: 'forged' });
    const flipped = (parts.signature as string).replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    expect(verifyMediaLink(key, { ...parts, signature: flipped }, T0)).toEqual({ ok: false, reason: 'forged' });
  });

  test('an expired link with a wrong signature says forged, not expired', () => {
    const parts = partsOf(mediaLink('https://b.example', key, MEDIA_ID, T0 - 1_000));
    expect(verifyMediaLink(key, parts, T0)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyMediaLink(key, { ...parts, signature: 'A'.repeat(43) }, T0)).toEqual({ ok: false, reason: 'forged' });
  });

  test.each([
    ['missing signature', { mediaId: MEDIA_ID, expires: '1700000060', signature: undefined }],
    ['missing expires', { mediaId: MEDIA_ID, expires: undefined, signature: 'A'.repeat(43) }],
    ['repeated parameters', { mediaId: MEDIA_ID, expires: ['1', '2'], signature: 'A'.repeat(43) }],
    ['a non-numeric expiry', { mediaId: MEDIA_ID, expires: '1e12', signature: 'A'.repeat(43) }],
    ['a short signature', { mediaId: MEDIA_ID, expires: '1700000060', signature: 'abc' }],
    ['a path in the media id', { mediaId: '../etc/passwd', expires: '1700000060', signature: 'A'.repeat(43) }],
    ['an empty media id', { mediaId: '', expires: '1700000060', signature: 'A'.repeat(43) }],
  ])('%s is malformed', (_name, parts) => {
    expect(verifyMediaLink(key, parts, T0)).toEqual({ ok: false, reason: 'malformed' });
  });

  test('MEDIA_LINK_SECRET, when set, replaces the key derived from the app secret', () => {
    const own = mediaLinkKey({ appSecret: 'app-secret-0123456789', linkSecret: 'a-separate-link-secret' });
    expect(own.equals(key)).toBe(false);
    expect(mediaLinkKey({ appSecret: 'app-secret-0123456789', linkSecret: '' }).equals(key)).toBe(true);
    // The app secret itself never signs links.
    expect(key.equals(Buffer.from('app-secret-0123456789'))).toBe(false);
  });

  test('media ids are URL-safe tokens; links never outlive WeChat\'s 3 days by default', () => {
    expect(isMediaId(MEDIA_ID)).toBe(true);
    expect(isMediaId('a/b')).toBe(false);
    expect(isMediaId('x'.repeat(257))).toBe(false);
    expect(MEDIA_LINK_MAX_TTL_MS).toBe(3 * 24 * 60 * 60 * 1000);
  });
});
