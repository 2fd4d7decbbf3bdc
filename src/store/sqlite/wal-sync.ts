/**
 * The fsyncs that make SQLite enqueues survive a power loss. A commit with `synchronous=NORMAL` in
 * WAL mode survives a crash of the process at once, and is on the disk once the WAL file is fsynced.
 * The fsync runs on libuv's thread pool, so the event loop goes on answering requests while the disk
 * works; one fsync covers every batch committed before it started, and the batches committed while it
 * runs share the next one.
 */
import { closeSync, openSync } from 'node:fs';
import type { DatabaseSync } from 'node:sqlite';

export type SyncFile = (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void;

export class WalSync {
  /** Committed batches waiting for an fsync that starts after their commit. */
  private waiters: Array<(error: Error | undefined) => void> = [];
  /** The fsync running now, if any. */
  private inFlight: Promise<void> | undefined;

  /** `fd` is the WAL file (see `openWalFile`), or undefined without one. */
  constructor(
    private readonly fd: number | undefined,
    private readonly syncFile: SyncFile,
  ) {}

  /** False without a WAL file: then a commit that must be on the disk is made with `synchronous=FULL`. */
  get hasWalFile(): boolean {
    return this.fd !== undefined;
  }

  /** Calls `done` once everything committed so far is fsynced (at once without a WAL file: the commit was). */
  whenDurable(done: (error: Error | undefined) => void): void {
    if (this.fd === undefined) return done(undefined);
    this.waiters.push(done);
    if (this.inFlight === undefined) this.start(this.fd);
  }

  /** Waits for the fsyncs in flight, then closes the file. */
  async close(): Promise<void> {
    while (this.inFlight !== undefined) await this.inFlight;
    if (this.fd !== undefined) closeSync(this.fd);
  }

  /** One fsync for every batch waiting; the batches committed while it runs wait for the next one. */
  private start(fd: number): void {
    const waiters = this.waiters;
    this.waiters = [];
    this.inFlight = new Promise((resolve) => {
      this.syncFile(fd, (error) => {
        this.inFlight = undefined;
        // An fsync that failed says nothing reliable about these frames: their callers get the error.
        for (const done of waiters) done(error ?? undefined);
        if (this.waiters.length > 0) this.start(fd);
        resolve();
      });
    });
  }
}

/**
 * The WAL file, to fsync before an enqueue resolves, or undefined without one (`:memory:`, a file
 * system that refused WAL mode, or a WAL file that cannot be opened): enqueues then commit with
 * `synchronous=FULL`. SQLite creates the file when the connection first reads in WAL mode and keeps
 * it while any connection is open.
 */
export function openWalFile(db: DatabaseSync, path: string): number | undefined {
  if (path === ':memory:' || db.prepare('PRAGMA journal_mode').get()?.journal_mode !== 'wal') return undefined;
  try {
    return openSync(`${path}-wal`, 'r');
  } catch {
    return undefined;
  }
}
