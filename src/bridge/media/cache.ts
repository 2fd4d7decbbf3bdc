/**
 * The on-disk cache of WeChat users' media (`MEDIA_CACHE_DIR`, default `./data/media`), so that a
 * file is fetched from WeChat once however often agents open its link.
 *
 * - One file per media_id, named by its SHA-256 (media ids never become paths), beside a small JSON
 *   record (content type, name, size, expiry). A file is written to a temporary name and renamed,
 *   record last, so a reader never sees half a file; several processes may share the directory.
 * - Entries live as long as WeChat keeps the media (3 days), then the sweep deletes them.
 * - Bounded: one file at most `maxFileBytes` (enforced while streaming, not after), and when the
 *   directory holds more than `maxBytes`, the sweep deletes the oldest entries down to 90 %.
 *   A sweep runs at start, every `sweepIntervalMs`, and after a tenth of `maxBytes` was written.
 *
 * Local on purpose, not in the database: the bytes live on this machine's disk, and another
 * instance that misses simply fetches the file from WeChat again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../../logger';

export interface CachedMedia {
  /** Absolute path of the bytes. */
  path: string;
  contentType: string;
  filename: string | undefined;
  size: number;
  /** Epoch ms. */
  fetchedAt: number;
  expiresAt: number;
}

interface Entry {
  contentType: string;
  filename?: string;
  size: number;
  fetchedAt: number;
  expiresAt: number;
}

export class MediaTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`media larger than ${limit} bytes`);
    this.name = 'MediaTooLargeError';
  }
}

export interface MediaFileCacheOptions {
  dir: string;
  /** Default 1 GiB. */
  maxBytes?: number;
  /** One file at most; default 20 MiB (WeChat's own limits are 10 MB). */
  maxFileBytes?: number;
  /** How long an entry is kept; default 3 days (WeChat's temporary media lifetime). */
  ttlMs?: number;
  /** Default 1 hour. */
  sweepIntervalMs?: number;
  now?: () => number;
  logger?: Logger;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Leftovers of an interrupted write older than this are deleted by the sweep. */
const STALE_TEMP_MS = 60 * 60 * 1000;

export class MediaFileCache {
  readonly dir: string;
  readonly maxFileBytes: number;
  private readonly maxBytes: number;
  private readonly ttlMs: number;
  private readonly sweepIntervalMs: number;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private timer: NodeJS.Timeout | undefined;
  private writtenSinceSweep = 0;
  private sweeping: Promise<unknown> | undefined;

  constructor(options: MediaFileCacheOptions) {
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
    this.maxFileBytes = options.maxFileBytes ?? 20 * 1024 * 1024;
    this.ttlMs = options.ttlMs ?? 3 * DAY_MS;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 60 * 60 * 1000;
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
  }

  /**
   * Sweeps once, then every `sweepIntervalMs` (the timer does not keep the process alive). The
   * directory is created by the first `put`, so a bridge that never serves media leaves no trace.
   */
  async start(): Promise<void> {
    await this.sweepQuietly();
    this.timer ??= setInterval(() => void this.sweepQuietly(), this.sweepIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  private paths(mediaId: string): { data: string; record: string; base: string } {
    const base = createHash('sha256').update(mediaId, 'utf8').digest('hex');
    return { base, data: path.join(this.dir, base), record: path.join(this.dir, `${base}.json`) };
  }

  /** The cached file of `mediaId` while it is fresh and whole, else undefined. */
  async get(mediaId: string): Promise<CachedMedia | undefined> {
    const { data, record } = this.paths(mediaId);
    const entry = await readRecord(record);
    if (!entry || entry.expiresAt <= this.now()) return undefined;
    try {
      const info = await stat(data);
      if (info.size !== entry.size) return undefined;
    } catch {
      return undefined;
    }
    return { path: data, contentType: entry.contentType, filename: entry.filename, size: entry.size, fetchedAt: entry.fetchedAt, expiresAt: entry.expiresAt };
  }

  /**
   * Streams `body` into the cache. Rejects with MediaTooLargeError as soon as it passes
   * `maxFileBytes` (the partial file is deleted), or with the stream's own error.
   */
  async put(mediaId: string, meta: { contentType: string; filename?: string | undefined }, body: Readable): Promise<CachedMedia> {
    await mkdir(this.dir, { recursive: true });
    const { data, record } = this.paths(mediaId);
    const temp = `${data}.${randomBytes(6).toString('hex')}.tmp`;
    let size = 0;
    const limit = this.maxFileBytes;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        callback(size > limit ? new MediaTooLargeError(limit) : null, chunk);
      },
    });
    try {
      await pipeline(body, counter, createWriteStream(temp, { flags: 'wx' }));
      const fetchedAt = this.now();
      const entry: Entry = { contentType: meta.contentType, size, fetchedAt, expiresAt: fetchedAt + this.ttlMs };
      if (meta.filename !== undefined) entry.filename = meta.filename;
      await rename(temp, data);
      // The record is written last (atomically): `get` trusts a record only with a file of its size.
      const recordTemp = `${record}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(recordTemp, JSON.stringify(entry));
      await rename(recordTemp, record);
      this.writtenSinceSweep += size;
      if (this.writtenSinceSweep > this.maxBytes / 10) void this.sweepQuietly();
      return { path: data, contentType: entry.contentType, filename: entry.filename, size, fetchedAt, expiresAt: entry.expiresAt };
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /** Deletes expired entries, leftovers of interrupted writes, and the oldest entries beyond `maxBytes`. */
  async sweep(): Promise<{ removed: number; bytes: number }> {
    this.writtenSinceSweep = 0;
    const now = this.now();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return { removed: 0, bytes: 0 };
    }
    const present = new Set(names);
    const live: Array<{ base: string; size: number; fetchedAt: number }> = [];
    let removed = 0;
    const remove = async (base: string) => {
      await rm(path.join(this.dir, `${base}.json`), { force: true });
      await rm(path.join(this.dir, base), { force: true });
      removed += 1;
    };
    for (const name of names) {
      const full = path.join(this.dir, name);
      if (name.endsWith('.tmp')) {
        const info = await stat(full).catch(() => undefined);
        if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(full, { force: true });
        continue;
      }
      if (/^[0-9a-f]{64}\.json$/.test(name)) {
        const base = name.slice(0, 64);
        const entry = await readRecord(full);
        if (!entry || entry.expiresAt <= now || !present.has(base)) await remove(base);
        else live.push({ base, size: entry.size, fetchedAt: entry.fetchedAt });
        continue;
      }
      if (/^[0-9a-f]{64}$/.test(name) && !present.has(`${name}.json`)) {
        // Bytes without a record: a write interrupted between the two renames.
        const info = await stat(full).catch(() => undefined);
        if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(full, { force: true });
      }
    }
    let bytes = live.reduce((sum, entry) => sum + entry.size, 0);
    if (bytes > this.maxBytes) {
      live.sort((a, b) => a.fetchedAt - b.fetchedAt);
      for (const entry of live) {
        if (bytes <= this.maxBytes * 0.9) break;
        await remove(entry.base);
        bytes -= entry.size;
      }
    }
    return { removed, bytes };
  }

  private sweepQuietly(): Promise<unknown> {
    this.sweeping ??= this.sweep()
      .catch((error: unknown) => this.logger?.warn({ err: error }, 'media cache sweep failed; will retry later'))
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }
}

async function readRecord(file: string): Promise<Entry | undefined> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as Partial<Entry>;
    if (
      typeof value.contentType === 'string' &&
      typeof value.size === 'number' &&
      typeof value.fetchedAt === 'number' &&
      typeof value.expiresAt === 'number'
    ) {
      return value as Entry;
    }
  } catch {
    // Missing or unreadable: not cached.
  }
  return undefined;
}
