import { InvalidInputError } from '../../../../src/errors';
import { mediaUrlRequest, uploadKey, withMediaId } from '../../../../src/bridge/media/outbound-media';
import { buildCustomSendBody } from '../../../../src/wechat/custom-message';

describe('media_url in outbound bodies', () => {
  test('flat and nested forms for image, voice and video', () => {
    expect(mediaUrlRequest({ msg_type: 'image', media_url: ' https://cdn.example/a.png ' })).toEqual({ type: 'image', url: 'https://cdn.example/a.png', nested: false });
    expect(mediaUrlRequest({ msg_type: 'voice', voice: { media_url: 'https://cdn.example/a.amr' } })).toEqual({ type: 'voice', url: 'https://cdn.example/a.amr', nested: true });
    expect(mediaUrlRequest({ msg_type: 'video', media_url: 'https://cdn.example/a.mp4', title: 'T' })).toMatchObject({ type: 'video' });
  });

  test('nothing to upload: text, another type, a media_id already given, no media_url', () => {
    expect(mediaUrlRequest({ content: 'hi', media_url: 'https://x' })).toBeUndefined();
    expect(mediaUrlRequest({ msg_type: 'news', media_url: 'https://x' })).toBeUndefined();
    expect(mediaUrlRequest({ msg_type: 'image', media_id: 'M', media_url: 'https://x' })).toBeUndefined();
    expect(mediaUrlRequest({ msg_type: 'image', image: { media_id: 'M', media_url: 'https://x' } })).toBeUndefined();
    expect(mediaUrlRequest({ msg_type: 'image' })).toBeUndefined();
  });

  test('a media_url that is not a string is invalid input', () => {
    expect(() => mediaUrlRequest({ msg_type: 'image', media_url: 42 })).toThrow(InvalidInputError);
    expect(() => mediaUrlRequest({ msg_type: 'image', image: { media_url: '' } })).toThrow('body.image.media_url');
  });

  test('the uploaded media_id takes the media_url\'s place, and the body then builds the WeChat message', () => {
    const flat = { direction: 'outbound', to: 'oUser', msg_type: 'video', media_url: 'https://x/a.mp4', title: 'T' };
    const request = mediaUrlRequest(flat)!;
    expect(buildCustomSendBody({ to: 'oUser', body: withMediaId(flat, request, 'MEDIA') })).toEqual({
      touser: 'oUser',
      msgtype: 'video',
      video: { media_id: 'MEDIA', title: 'T' },
    });
    const nested = { msg_type: 'image', image: { media_url: 'https://x/a.png' } };
    expect(withMediaId(nested, mediaUrlRequest(nested)!, 'M2')).toEqual({ msg_type: 'image', image: { media_id: 'M2' } });
    expect(nested.image).toEqual({ media_url: 'https://x/a.png' }); // the input is not changed
  });

  test('the upload key depends on the type and the whole URL, never contains it', () => {
    const a = uploadKey({ type: 'image', url: 'https://x/a.png?token=secret' });
    expect(a).toMatch(/^media-url:image:[0-9a-f]{64}$/);
    expect(a).not.toContain('secret');
    expect(uploadKey({ type: 'thumb', url: 'https://x/a.png?token=secret' })).not.toBe(a);
    expect(uploadKey({ type: 'image', url: 'https://x/b.png?token=secret' })).not.toBe(a);
  });
});
