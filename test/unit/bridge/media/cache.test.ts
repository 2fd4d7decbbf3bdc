import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { MediaFileCache, MediaTooLargeError } from '../../../../src/bridge/media/cache';

const T0 = 1_700_000_000_000;
const DAY = 24 * 60 * 60 * 1000;

describe('MediaFileCache', () => {
  let dir: string;
  let now: number;
  const cache = (options: { maxBytes?: number; maxFileBytes?: number } = {}) =>
    new MediaFileCache({ dir: path.join(dir, 'media'), now: () => now, ...options });

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'media-cache-'));
    now = T0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('a stored file is read back whole, under a name that is not the media id', async () => {
    const media = cache();
    await media.start();
    expect(existsSync(media.dir)).toBe(false); // nothing written until a file comes
    await expect(media.get('m1')).resolves.toBeUndefined();
    const put = await media.put('m1', { contentType: 'image/png', filename: 'a.png' }, Readable.from([Buffer.from('abc'), Buffer.from('def')]));
    expect(put).toMatchObject({ contentType: 'image/png', filename: 'a.png', size: 6, expiresAt: T0 + 3 * DAY });
    const got = await media.get('m1');
    expect(got).toEqual(put);
    expect(await readFile(got!.path, 'utf8')).toBe('abcdef');
    expect(readdirSync(media.dir).some((name) => name.includes('m1'))).toBe(false);
    await media.stop();
  });

  test('a file over the limit is refused while streaming and leaves nothing behind', async () => {
    const media = cache({ maxFileBytes: 10 });
    let pulled = 0;
    const endless = new Readable({
      read() {
        pulled += 1;
        this.push(Buffer.alloc(4, 1));
      },
    });
    await expect(media.put('big', { contentType: 'video/mp4' }, endless)).rejects.toBeInstanceOf(MediaTooLargeError);
    expect(pulled * 4).toBeLessThan(256 * 1024); // stopped within the streams' buffers, not at the end (there is none)
    await expect(media.get('big')).resolves.toBeUndefined();
    expect(readdirSync(media.dir)).toEqual([]);
  });

  test('entries expire after 3 days and the sweep deletes them, and stale leftovers of interrupted writes', async () => {
    const media = cache();
    await media.put('old', { contentType: 'audio/amr' }, Readable.from([Buffer.from('old')]));
    now = T0 + 2 * DAY;
    await media.put('new', { contentType: 'audio/amr' }, Readable.from([Buffer.from('new')]));
    const leftover = path.join(media.dir, `${'a'.repeat(64)}.0123456789ab.tmp`);
    writeFileSync(leftover, 'half');
    utimesSync(leftover, new Date(T0), new Date(T0));
    now = T0 + 3 * DAY;
    await expect(media.get('old')).resolves.toBeUndefined();
    await expect(media.sweep()).resolves.toEqual({ removed: 1, bytes: 3 });
    expect(existsSync(leftover)).toBe(false);
    await expect(media.get('new')).resolves.toMatchObject({ size: 3 });
    expect(readdirSync(media.dir)).toHaveLength(2); // the new file and its record
  });

  test('beyond maxBytes the sweep deletes the oldest entries down to 90 %', async () => {
    const media = cache({ maxBytes: 100 });
    for (let n = 0; n < 5; n += 1) {
      now = T0 + n * 1000;
      await media.put(`m${n}`, { contentType: 'image/gif' }, Readable.from([Buffer.alloc(30, n)]));
    }
    const result = await media.sweep();
    expect(result.bytes).toBeLessThanOrEqual(90);
    await expect(media.get('m0')).resolves.toBeUndefined();
    await expect(media.get('m4')).resolves.toMatchObject({ size: 30 });
  });

  test('a record whose file is missing or truncated is a miss', async () => {
    const media = cache();
    const put = await media.put('m1', { contentType: 'image/png' }, Readable.from([Buffer.from('abcdef')]));
    writeFileSync(put.path, 'abc');
    await expect(media.get('m1')).resolves.toBeUndefined();
    rmSync(put.path);
    await expect(media.get('m1')).resolves.toBeUndefined();
  });
});
