import { spawn } from 'node:child_process';
import { existsSync, fstatSync, fsync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { applySqliteMigrations, sqliteMigrations } from '../../../../src/store/sqlite/migrations';
import { openStore } from '../../../../src/store/open-store';
import { SqliteStore, type SqliteStoreOptions } from '../../../../src/store/sqlite/store';
import { wasSeen, type NewJob } from '../../../../src/store/store';
import { describeStoreContract, expectDrainedOnceInKeyOrder } from '../../../support/store-contract';

const T0 = 1_700_000_000_000;
const DAY = 24 * 60 * 60 * 1000;

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sqlite-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function clock(start = T0) {
  let current = start;
  return { now: () => current, set: (ms: number) => (current = ms), advance: (ms: number) => (current += ms) };
}

describeStoreContract('SqliteStore on a file', async () => {
  const time = clock();
  const path = join(tempDir(), 'nested', 'bridge.db');
  let store = SqliteStore.open(path, { now: time.now });
  const peers: SqliteStore[] = [];
  return {
    store,
    setNow: time.set,
    reopen: async () => {
      await store.close();
      store = SqliteStore.open(path, { now: time.now });
      return store;
    },
    // Another process's connection to the same file.
    openPeer: async () => {
      const peer = SqliteStore.open(path, { now: time.now });
      peers.push(peer);
      return peer;
    },
    cleanup: async () => {
      for (const peer of peers) await peer.close();
      await store.close();
    },
  };
}, { durable: true, shared: true });

describeStoreContract('SqliteStore in memory', async () => {
  const time = clock();
  const store = SqliteStore.open(':memory:', { now: time.now });
  return { store, setNow: time.set, cleanup: () => store.close() };
});

/**
 * Transactions committed to a WAL file since it was last reset: its frames whose header records a
 * database size (a commit frame) and carries the file's current salt (https://sqlite.org/fileformat2.html#walformat).
 */
function walCommits(path: string): number {
  const wal = readFileSync(`${path}-wal`);
  const pageSize = wal.readUInt32BE(8);
  const salt = wal.subarray(16, 24);
  let commits = 0;
  for (let offset = 32; offset + 24 + pageSize <= wal.length; offset += 24 + pageSize) {
    if (!wal.subarray(offset + 8, offset + 16).equals(salt)) break;
    if (wal.readUInt32BE(offset + 4) !== 0) commits += 1;
  }
  return commits;
}

const job = (orderKey: string, payload: unknown, extra: Partial<NewJob> = {}): NewJob => ({
  kind: 'deliver',
  orderKey,
  payload,
  ...extra,
});

describe('SqliteStore group commit', () => {
  test('200 concurrent enqueues share one transaction and each gets its own outcome', async () => {
    const batches: Array<{ calls: number; jobs: number; stored: number }> = [];
    const store = SqliteStore.open(':memory:', { onBatchCommit: (batch) => batches.push(batch) });
    try {
      // Calls 150..199 repeat the dedup keys of calls 0..49; the first of each key is the one stored.
      const keyOf = (call: number) => `msg-${call % 150}`;
      const calls = Array.from({ length: 200 }, (_, call) =>
        store.enqueue([job(`user-${call % 7}`, { call }, { dedupKey: keyOf(call) })]),
      );
      const results = await Promise.all(calls);

      expect(batches).toEqual([{ calls: 200, jobs: 200, stored: 150 }]);
      results.forEach(([result], call) => expect(result!.outcome).toBe(call < 150 ? 'stored' : 'duplicate'));
      expect((await store.stats()).depth).toEqual({ deliver: 150 });

      // Every stored job is there, and each key still runs in enqueue order.
      await expectDrainedOnceInKeyOrder(store, 150, 7);
    } finally {
      await store.close();
    }
  });

  test('a call that fails inside the batch is rejected whole; the others of the batch are stored', async () => {
    const path = join(tempDir(), 'poison.db');
    const store = SqliteStore.open(path);
    // Another connection adds a trigger that makes the database refuse one kind of job.
    const admin = new DatabaseSync(path);
    admin.exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON jobs WHEN NEW.kind = 'poison'
                BEGIN SELECT RAISE(ABORT, 'poison refused'); END`);
    admin.close();

    const first = store.enqueue([job('a', 'first', { dedupKey: 'k-first' })]);
    const poisoned = store.enqueue([
      job('b', 'good part of a bad call', { dedupKey: 'k-bad' }),
      job('b', 'bad', { kind: 'poison' }),
    ]);
    const last = store.enqueue([job('c', 'last', { dedupKey: 'k-last' })]);
    await expect(poisoned).rejects.toThrow('poison refused');
    await expect(first).resolves.toEqual([{ outcome: 'stored' }]);
    await expect(last).resolves.toEqual([{ outcome: 'stored' }]);

    const claimed = await store.claim({ limit: 10, leaseMs: 1_000 });
    expect(claimed.map((each) => each.payload)).toEqual(['first', 'last']);
    // Nothing of the rejected call was kept, not even its dedup key.
    await expect(store.enqueue([job('b', 'retried by the caller', { dedupKey: 'k-bad' })])).resolves.toEqual([
      { outcome: 'stored' },
    ]);
    await store.close();
  });

  test('enqueues in separate turns are separate transactions', async () => {
    const batches: Array<{ calls: number; jobs: number; stored: number }> = [];
    const store = SqliteStore.open(':memory:', { onBatchCommit: (batch) => batches.push(batch) });
    await store.enqueue([job('a', 1)]);
    await store.enqueue([job('a', 2), job('b', 3)]);
    expect(batches).toEqual([
      { calls: 1, jobs: 1, stored: 1 },
      { calls: 1, jobs: 2, stored: 2 },
    ]);
    await store.close();
  });

  test('close writes a pending batch before closing', async () => {
    const path = join(tempDir(), 'close.db');
    const store = SqliteStore.open(path);
    const pending = store.enqueue([job('a', 'written at close')]);
    await store.close();
    await expect(pending).resolves.toEqual([{ outcome: 'stored' }]);

    const reopened = SqliteStore.open(path);
    expect((await reopened.claim({ limit: 10, leaseMs: 1_000 })).map((each) => each.payload)).toEqual([
      'written at close',
    ]);
    await reopened.close();
  });

  test('an enqueue resolves only after the WAL file is fsynced, and the loop runs on while the fsync does', async () => {
    const path = join(tempDir(), 'fsync.db');
    const syncs: Array<{ fd: number; finish: (error: NodeJS.ErrnoException | null) => void }> = [];
    const store = SqliteStore.open(path, { syncFile: (fd, callback) => syncs.push({ fd, finish: callback }) });
    try {
      let resolved = false;
      const first = store.enqueue([job('a', 'first')]).then((result) => ((resolved = true), result));
      // Several turns of the event loop pass while the disk works: nothing waits on the fsync but the caller.
      for (let turn = 0; turn < 5; turn += 1) await new Promise((resolve) => setImmediate(resolve));
      expect(syncs).toHaveLength(1);
      expect(fstatSync(syncs[0]!.fd).ino).toBe(statSync(`${path}-wal`).ino);
      expect(resolved).toBe(false);

      // A batch committed while that fsync runs waits for the next one, which starts after it.
      const second = store.enqueue([job('b', 'second')]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(syncs).toHaveLength(1);
      syncs[0]!.finish(null);
      await expect(first).resolves.toEqual([{ outcome: 'stored' }]);
      expect(syncs).toHaveLength(2);
      syncs[1]!.finish(null);
      await expect(second).resolves.toEqual([{ outcome: 'stored' }]);
    } finally {
      const closing = store.close();
      for (const sync of syncs.slice(2)) sync.finish(null);
      await closing;
    }
  });

  test('an enqueue whose fsync fails is rejected, and a later one is acknowledged', async () => {
    const path = join(tempDir(), 'fsync-fails.db');
    let failNext = true;
    const store = SqliteStore.open(path, {
      syncFile: (fd, callback) => {
        if (!failNext) return fsync(fd, callback);
        failNext = false;
        setImmediate(() => callback(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })));
      },
    });
    await expect(store.enqueue([job('a', 'not known to be on the disk')])).rejects.toThrow('EIO');
    await expect(store.enqueue([job('b', 'on the disk')])).resolves.toEqual([{ outcome: 'stored' }]);
    await store.close();
  });

  test('a closed store rejects every call', async () => {
    const store = SqliteStore.open(':memory:');
    await store.close();
    await store.close();
    await expect(store.enqueue([job('a', 1)])).rejects.toThrow('closed');
    await expect(store.claim({ limit: 1, leaseMs: 1_000 })).rejects.toThrow('closed');
    await expect(store.ping()).rejects.toThrow('closed');
  });

  test('an acknowledged enqueue survives kill -9 of the process right after', async () => {
    const path = join(tempDir(), 'crash.db');
    // A child process loads the store from source, enqueues, reports, and kills itself with SIGKILL.
    const child = spawn(process.execPath, ['-e', CRASHING_CHILD, join(__dirname, '../../../../src/store/sqlite/store.ts'), path], {
      cwd: join(__dirname, '../../../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
    expect({ signal, stdout: stdout.trim(), stderr }).toEqual({ signal: 'SIGKILL', stdout: 'stored 50', stderr: '' });

    const reopened = SqliteStore.open(path);
    const claimed = await reopened.claim({ limit: 100, leaseMs: 1_000 });
    expect(claimed.map((each) => each.payload)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    await reopened.close();
  });
});

/** Registers a .ts loader (TypeScript's transpiler), enqueues 50 jobs, then SIGKILLs itself. */
const CRASHING_CHILD = `
const fs = require('node:fs');
const ts = require('typescript');
require.extensions['.ts'] = (module, filename) => {
  const source = fs.readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  module._compile(outputText, filename);
};
const [storeModule, dbPath] = process.argv.slice(1);
const { SqliteStore } = require(storeModule);
const store = SqliteStore.open(dbPath);
const calls = [];
for (let i = 0; i < 50; i += 1) calls.push(store.enqueue([{ kind: 'deliver', orderKey: 'user-' + i, payload: i, dedupKey: 'k' + i }]));
Promise.all(calls).then((results) => {
  const stored = results.filter(([r]) => r.outcome === 'stored').length;
  fs.writeSync(1, 'stored ' + stored + '\\n');
  process.kill(process.pid, 'SIGKILL');
});
`;

describe('SqliteStore dedup retention and pruning', () => {
  test('a dedup key is forgotten after the retention, even before it is pruned', async () => {
    const time = clock();
    const store = SqliteStore.open(':memory:', { now: time.now, dedupRetentionMs: 7 * DAY, pruneIntervalMs: 365 * DAY });
    await store.enqueue([job('a', 1, { dedupKey: 'msg' })]);
    time.advance(7 * DAY - 1);
    await expect(store.enqueue([job('a', 2, { dedupKey: 'msg' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
    time.advance(1);
    await expect(store.enqueue([job('a', 3, { dedupKey: 'msg' })])).resolves.toEqual([{ outcome: 'stored' }]);
    // The key was renewed by that store: it is remembered for another retention period.
    time.advance(DAY);
    await expect(store.enqueue([job('a', 4, { dedupKey: 'msg' })])).resolves.toEqual([{ outcome: 'duplicate' }]);
    await store.close();
  });

  test('expired dedup keys and seen keys are pruned', async () => {
    const time = clock();
    const store = SqliteStore.open(':memory:', { now: time.now, dedupRetentionMs: DAY, pruneIntervalMs: 365 * DAY });
    await store.enqueue([job('a', 1, { dedupKey: 'old-1' }), job('a', 2, { dedupKey: 'old-2' })]);
    await store.markSeen('jti-old', T0 + 1_000);
    await store.markSeen('jti-live', T0 + 2 * DAY);
    time.advance(DAY);
    await store.enqueue([job('a', 3, { dedupKey: 'new' })]);
    await expect(store.pruneExpired()).resolves.toEqual({ dedupKeys: 2, seenKeys: 1 });
    await expect(store.pruneExpired()).resolves.toEqual({ dedupKeys: 0, seenKeys: 0 });
    await expect(store.markSeen('jti-live', T0 + 3 * DAY)).resolves.toBe(false);
    await store.close();
  });

  test('asking whether a key is seen writes nothing, so it answers while another connection holds the write lock', async () => {
    const path = join(tempDir(), 'probe.db');
    const store = SqliteStore.open(path, { now: () => T0, busyTimeoutMs: 0 });
    await store.markSeen('live', T0 + 60_000);
    const peer = new DatabaseSync(path);
    peer.exec('BEGIN IMMEDIATE');
    try {
      await expect(wasSeen(store, 'live')).resolves.toBe(true);
      await expect(wasSeen(store, 'never-seen')).resolves.toBe(false);
    } finally {
      peer.exec('ROLLBACK');
    }
    expect(peer.prepare(`SELECT key FROM seen_keys ORDER BY key`).all()).toEqual([{ key: 'live' }]);
    peer.close();
    await store.close();
  });

  test('a claim that finds nothing runnable writes nothing, so it answers while another connection holds the write lock', async () => {
    const path = join(tempDir(), 'idle-claim.db');
    const store = SqliteStore.open(path, { now: () => T0, busyTimeoutMs: 0 });
    await store.enqueue([job('later', 'not yet', { runAt: T0 + 60_000 })]);
    const peer = new DatabaseSync(path);
    peer.exec('BEGIN IMMEDIATE');
    try {
      await expect(store.claim({ limit: 8, leaseMs: 15_000 })).resolves.toEqual([]);
    } finally {
      peer.exec('ROLLBACK');
      peer.close();
    }
    await store.close();
  });

  test('the small writes of one turn commit together; one that fails is rejected on its own', async () => {
    const path = join(tempDir(), 'turn.db');
    const store = SqliteStore.open(path, { now: () => T0 });
    await store.enqueue([job('a', 1), job('b', 2), job('c', 3)]);
    const [a, b, c] = await store.claim({ limit: 3, leaseMs: 15_000 });
    await store.grantSendAllowance({ scope: 's', kind: 'message', openedAt: T0, closesAt: T0 + 60_000, remaining: 1 });
    const commitsBefore = walCommits(path);
    // All made in one turn of the event loop; the bad key fails inside the shared transaction.
    const outcomes = await Promise.allSettled([
      store.complete(a!),
      store.retry(b!, T0 + 1_000, 'Vonage answered 503'),
      store.deadLetter(c!, 'gave up'),
      store.markSeen('fresh', T0 + 60_000),
      store.markSeen(undefined as unknown as string, T0 + 60_000),
      store.takeSendAllowance('s', T0),
      store.takeSendAllowance('s', T0),
    ]);
    expect(outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : 'rejected'))).toEqual([true, true, true, true, 'rejected', true, false]);
    // The shared transaction rolled back, then each write committed on its own: five that changed
    // something (the bad one and the second take did not).
    expect(walCommits(path) - commitsBefore).toBe(5);
    // Without a failing write, the whole turn is one commit.
    await store.enqueue([job('d', 4)]);
    const [d] = await store.claim({ limit: 1, leaseMs: 15_000 });
    await store.grantSendAllowance({ scope: 's', kind: 'message', openedAt: T0 + 1, closesAt: T0 + 60_000, remaining: 1 });
    const oneTurn = walCommits(path);
    await Promise.all([store.complete(d!), store.markSeen('fresh-2', T0 + 60_000), store.takeSendAllowance('s', T0)]);
    expect(walCommits(path) - oneTurn).toBe(1);
    expect(await store.stats()).toMatchObject({ depth: { deliver: 1 }, deadLetters: 1 });
    expect((await store.listDeadLetters()).map((dead) => dead.reason)).toEqual(['gave up']);
    await expect(wasSeen(store, 'fresh')).resolves.toBe(true);
    await store.close();
  });

  test('enqueue prunes on its own once the prune interval has passed', async () => {
    const time = clock();
    const store = SqliteStore.open(':memory:', { now: time.now, dedupRetentionMs: DAY, pruneIntervalMs: 60_000 });
    await store.enqueue([job('a', 1, { dedupKey: 'old' })]);
    time.advance(DAY);
    await store.enqueue([job('a', 2)]);
    await expect(store.pruneExpired()).resolves.toEqual({ dedupKeys: 0, seenKeys: 0 });
    await store.close();
  });
});

describe('SqliteStore schema and files', () => {
  test('creates the parent directory, records its migrations once, and uses WAL', async () => {
    const path = join(tempDir(), 'a', 'b', 'bridge.db');
    await (SqliteStore.open(path)).close();
    await (SqliteStore.open(path)).close();
    expect(existsSync(path)).toBe(true);

    const db = new DatabaseSync(path);
    expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').all().map((row) => row.version)).toEqual([1, 2, 3, 4, 5]);
    expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' });
    db.close();
  });

  test('a version 1 database is upgraded in place: its jobs stay, leased ones included', async () => {
    const path = join(tempDir(), 'v1.db');
    const db = new DatabaseSync(path);
    applySqliteMigrations(db, sqliteMigrations.filter((migration) => migration.version === 1), T0);
    db.exec(`INSERT INTO jobs (kind, order_key, payload, attempts, created_at, run_at, lease_until, is_head, available_at)
             VALUES ('deliver', 'a', '"leased by the old version"', 1, ${T0}, ${T0}, ${T0 + 60_000}, 1, ${T0 + 60_000}),
                    ('deliver', 'b', '"waiting"', 0, ${T0}, ${T0}, NULL, 1, ${T0})`);
    db.close();

    const time = clock(T0);
    const store = SqliteStore.open(path, { now: time.now, releaseLeasesOnOpen: true });
    try {
      const claimed = await store.claim({ limit: 10, leaseMs: 1_000 });
      expect(claimed.map((each) => [each.payload, each.attempts, each.interrupted])).toEqual([
        ['leased by the old version', 1, false],
        ['waiting', 0, false],
      ]);
      for (const each of claimed) await expect(store.complete(each)).resolves.toBe(true);
    } finally {
      await store.close();
    }
  });

  test('a version 4 database migrates to 5: its jobs keep their order, and marks gone wrong are put right', async () => {
    const path = join(tempDir(), 'v4.db');
    const db = new DatabaseSync(path);
    applySqliteMigrations(db, sqliteMigrations.filter((migration) => migration.version <= 4), T0);
    // Key a as version 4 leaves it; key b with a second head and key c with none, as no write makes them.
    db.exec(`INSERT INTO jobs (kind, order_key, payload, attempts, created_at, run_at, is_head, available_at) VALUES
               ('deliver', 'a', '"a1"', 0, ${T0}, ${T0}, 1, ${T0}),
               ('deliver', 'a', '"a2"', 0, ${T0}, ${T0}, 0, ${T0}),
               ('deliver', 'b', '"b1"', 0, ${T0}, ${T0}, 1, ${T0}),
               ('deliver', 'b', '"b2"', 0, ${T0}, ${T0}, 1, ${T0}),
               ('deliver', 'c', '"c1"', 0, ${T0}, ${T0}, 0, ${T0})`);
    db.close();

    const store = SqliteStore.open(path, { now: clock(T0).now });
    try {
      const first = await store.claim({ limit: 10, leaseMs: 1_000 });
      expect(first.map((each) => each.payload)).toEqual(['a1', 'b1', 'c1']);
      for (const each of first) await expect(store.complete(each)).resolves.toBe(true);
      expect((await store.claim({ limit: 10, leaseMs: 1_000 })).map((each) => each.payload)).toEqual(['a2', 'b2']);
    } finally {
      await store.close();
    }
    const reopened = new DatabaseSync(path);
    expect(reopened.prepare('SELECT version FROM schema_migrations ORDER BY version').all().map((row) => row.version)).toEqual([1, 2, 3, 4, 5]);
    reopened.close();
  });

  test('the database itself refuses a second head job for an order key', async () => {
    const path = join(tempDir(), 'heads.db');
    const store = SqliteStore.open(path, { now: () => T0 });
    await store.enqueue([job('a', 'a1'), job('a', 'a2'), job('b', 'b1')]);
    const db = new DatabaseSync(path);
    try {
      expect(() => db.exec(`UPDATE jobs SET is_head = 1 WHERE order_key = 'a' AND is_head = 0`)).toThrow(
        /UNIQUE constraint failed: jobs\.order_key/,
      );
      expect(() =>
        db.exec(`INSERT INTO jobs (kind, order_key, payload, attempts, created_at, run_at, is_head, available_at)
                 VALUES ('deliver', 'b', '"b2"', 0, ${T0}, ${T0}, 1, ${T0})`),
      ).toThrow(/UNIQUE constraint failed: jobs\.order_key/);
      // A job that is not a head is as welcome as ever, and heads of other keys too.
      db.exec(`INSERT INTO jobs (kind, order_key, payload, attempts, created_at, run_at, is_head, available_at)
               VALUES ('deliver', 'b', '"b2"', 0, ${T0}, ${T0}, 0, ${T0}), ('deliver', 'c', '"c1"', 0, ${T0}, ${T0}, 1, ${T0})`);
      expect(db.prepare(`SELECT order_key, count(*) AS heads FROM jobs WHERE is_head = 1 GROUP BY order_key ORDER BY order_key`).all()).toEqual([
        { order_key: 'a', heads: 1 },
        { order_key: 'b', heads: 1 },
        { order_key: 'c', heads: 1 },
      ]);
    } finally {
      db.close();
      await store.close();
    }
  });

  test('refuses a database migrated by a newer version', () => {
    const path = join(tempDir(), 'newer.db');
    const db = new DatabaseSync(path);
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    db.exec("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)");
    db.close();
    expect(() => SqliteStore.open(path)).toThrow(/schema version 999 is newer/);
  });

  test('two connections to one file share the queue: a lease excludes the other, then expires to it', async () => {
    const time = clock();
    const path = join(tempDir(), 'shared.db');
    const options: SqliteStoreOptions = { now: time.now };
    const first = SqliteStore.open(path, options);
    const second = SqliteStore.open(path, options);
    await first.enqueue([job('a', 'a1'), job('b', 'b1')]);

    const [a1] = await first.claim({ limit: 1, leaseMs: 10_000 });
    expect(a1!.payload).toBe('a1');
    expect((await second.claim({ limit: 10, leaseMs: 10_000 })).map((each) => each.payload)).toEqual(['b1']);
    expect(await second.claim({ limit: 10, leaseMs: 10_000 })).toEqual([]);

    // The first "process" dies holding a1; after its lease the second takes it over.
    await first.close();
    time.advance(10_000);
    expect(await second.claim({ limit: 10, leaseMs: 10_000 })).toEqual([
      expect.objectContaining({ id: a1!.id, payload: 'a1', attempts: 1 }),
      expect.objectContaining({ payload: 'b1', attempts: 1 }),
    ]);
    await second.close();
  });
});

describe('openStore', () => {
  test('sqlite::memory: opens an in-memory store', async () => {
    const store = await openStore('sqlite::memory:');
    await store.enqueue([job('a', 1)]);
    expect((await store.stats()).depth).toEqual({ deliver: 1 });
    await store.close();
  });

  test('a relative sqlite path is resolved against the working directory; an absolute one is kept', async () => {
    const dir = tempDir();
    const relative = await openStore('sqlite:./data/bridge.db', { cwd: dir });
    await relative.close();
    expect(existsSync(join(dir, 'data', 'bridge.db'))).toBe(true);

    const absolute = await openStore(`sqlite:${join(dir, 'abs.db')}`);
    await absolute.close();
    expect(existsSync(join(dir, 'abs.db'))).toBe(true);

    const tripleSlash = await openStore(`sqlite://${join(dir, 'triple.db')}`);
    await tripleSlash.close();
    expect(existsSync(join(dir, 'triple.db'))).toBe(true);
  });

  test('anything else names the accepted forms and never echoes the value', async () => {
    const attempt = openStore('mysql://root:hunter2@db/bridge');
    await expect(attempt).rejects.toThrow(/sqlite:<path>/);
    await expect(attempt).rejects.not.toThrow(/hunter2/);
    await expect(openStore('sqlite:')).rejects.toThrow(/empty/);
    await expect(openStore('sqlite://host/bridge.db')).rejects.toThrow(/not a host/);
  });
});

describe('SqliteStore after a crash', () => {
  const job: NewJob = { kind: 'k', orderKey: 'user-1', payload: { n: 1 } };

  test.each([
    [true, 1],
    [false, 0],
  ])('releaseLeasesOnOpen=%s: a job leased by a dead process is claimable at once: %s', async (release, expected) => {
    const dir = mkdtempSync(join(tmpdir(), 'bridge-lease-'));
    try {
      const path = join(dir, 'store.db');
      const crashed = SqliteStore.open(path);
      await crashed.enqueue([job]);
      expect(await crashed.claim({ limit: 1, leaseMs: 60_000 })).toHaveLength(1);
      await crashed.close(); // stands for the process dying while it held the lease

      const restarted = SqliteStore.open(path, { releaseLeasesOnOpen: release });
      try {
        const claimed = await restarted.claim({ limit: 1, leaseMs: 60_000 });
        expect(claimed).toHaveLength(expected);
        // The dead process never recorded an outcome: the new run is told so.
        if (expected) expect(claimed[0]).toMatchObject({ payload: { n: 1 }, attempts: 1, interrupted: true });
      } finally {
        await restarted.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
