/**
 * The PostgreSQL store against a real server (127.0.0.1:5432; see test/support/postgres.ts): the
 * shared store contract (the same suite SQLite runs), then what only a server database has:
 * concurrent migrations, group commit, connections that break, statements that hang.
 */
import { Client } from 'pg';
import { openStore } from '../../../../src/store/open-store';
import { applyPostgresMigrations, postgresMigrations } from '../../../../src/store/postgres/migrations';
import { PostgresStore, type PostgresStoreOptions } from '../../../../src/store/postgres/store';
import { wasSeen, type NewJob, type Store } from '../../../../src/store/store';
import { freePort } from '../../../support/net';
import { createTestDatabase, POSTGRES_ADMIN_URL, runQuery, type TestDatabase } from '../../../support/postgres';
import { describeStoreContract, expectDrainedOnceInKeyOrder } from '../../../support/store-contract';
import { sleep } from '../../../support/wait';

const T0 = 1_700_000_000_000;

function clock(start = T0) {
  let current = start;
  return { now: () => current, set: (ms: number) => (current = ms), advance: (ms: number) => (current += ms) };
}

const job = (orderKey: string, payload: unknown, extra: Partial<NewJob> = {}): NewJob => ({
  kind: 'deliver',
  orderKey,
  payload,
  ...extra,
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await (await PostgresStore.open(db.url)).close();
});
afterAll(async () => {
  await db?.drop();
});

const TABLES = 'jobs, dead_letters, dedup_keys, seen_keys, tokens, locks, conversation_mappings, uploaded_media, send_allowances, remembered_values';

describeStoreContract(
  'PostgresStore',
  async () => {
    const time = clock();
    await db.query(`TRUNCATE ${TABLES} RESTART IDENTITY`);
    const open = () => PostgresStore.open(db.url, { now: time.now });
    let store = await open();
    const peers: Store[] = [];
    return {
      store,
      setNow: time.set,
      reopen: async () => {
        await store.close();
        store = await open();
        return store;
      },
      openPeer: async () => {
        const peer = await open();
        peers.push(peer);
        return peer;
      },
      cleanup: async () => {
        for (const peer of peers) await peer.close();
        await store.close();
      },
    };
  },
  { durable: true, shared: true },
);

describe('PostgresStore on a server', () => {
  const opened: Store[] = [];
  const open = async (options: PostgresStoreOptions = {}, url = db.url) => {
    const store = await PostgresStore.open(url, options);
    opened.push(store);
    return store;
  };
  beforeEach(async () => {
    await db.query(`TRUNCATE ${TABLES} RESTART IDENTITY`);
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  test('instances starting at once on a new database migrate it once', async () => {
    const fresh = await createTestDatabase();
    try {
      const stores = await Promise.all(Array.from({ length: 5 }, () => open({}, fresh.url)));
      expect(await fresh.query('SELECT version FROM schema_migrations ORDER BY version')).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }]);
      await stores[0]!.enqueue([job('a', 'from one instance')]);
      expect((await stores[4]!.claim({ limit: 5, leaseMs: 1_000 })).map((claimed) => claimed.payload)).toEqual(['from one instance']);
      for (const store of opened.splice(0)) await store.close();
    } finally {
      await fresh.drop();
    }
  });

  test('a version 3 database migrates to 4: its jobs keep their order, and marks gone wrong are put right', async () => {
    const fresh = await createTestDatabase();
    try {
      const client = new Client({ connectionString: fresh.url });
      await client.connect();
      try {
        await applyPostgresMigrations(client, postgresMigrations.filter((migration) => migration.version <= 3));
      } finally {
        await client.end();
      }
      // Key a as version 3 leaves it; key b with a second head and key c with none, as no write makes them.
      await fresh.query(`SELECT bridge_enqueue(ARRAY['deliver','deliver'], ARRAY['a','a'], ARRAY['"a1"','"a2"'],
                                               ARRAY[NULL,NULL]::text[], ARRAY[NULL,NULL]::bigint[], $1, 0)`, [T0]);
      await fresh.query(`INSERT INTO jobs (kind, order_key, payload, created_at, run_at, available_at, is_head) VALUES
                           ('deliver', 'b', '"b1"', $1, $1, $1, true), ('deliver', 'b', '"b2"', $1, $1, $1, true),
                           ('deliver', 'c', '"c1"', $1, $1, $1, false)`, [T0]);

      const store = await open({ now: clock(T0).now }, fresh.url);
      expect(await fresh.query('SELECT version FROM schema_migrations ORDER BY version')).toEqual([
        { version: 1 },
        { version: 2 },
        { version: 3 },
        { version: 4 },
      ]);
      const first = await store.claim({ limit: 10, leaseMs: 1_000 });
      expect(first.map((each) => each.payload)).toEqual(['a1', 'b1', 'c1']);
      for (const each of first) await expect(store.complete(each)).resolves.toBe(true);
      expect((await store.claim({ limit: 10, leaseMs: 1_000 })).map((each) => each.payload)).toEqual(['a2', 'b2']);
      for (const each of opened.splice(0)) await each.close();
    } finally {
      await fresh.drop();
    }
  });

  test('the database itself refuses a second head job for an order key', async () => {
    const store = await open({ now: () => T0 });
    await store.enqueue([job('a', 'a1'), job('a', 'a2'), job('b', 'b1')]);
    await expect(db.query(`UPDATE jobs SET is_head = true WHERE order_key = 'a' AND NOT is_head`)).rejects.toThrow(
      /duplicate key value violates unique constraint "jobs_one_head_per_order_key"/,
    );
    await expect(
      db.query(`INSERT INTO jobs (kind, order_key, payload, created_at, run_at, available_at, is_head) VALUES ('deliver', 'b', '"b2"', $1, $1, $1, true)`, [T0]),
    ).rejects.toThrow(/jobs_one_head_per_order_key/);
    // A job that is not a head is as welcome as ever, and heads of other keys too.
    await db.query(`INSERT INTO jobs (kind, order_key, payload, created_at, run_at, available_at, is_head)
                    VALUES ('deliver', 'b', '"b2"', $1, $1, $1, false), ('deliver', 'c', '"c1"', $1, $1, $1, true)`, [T0]);
    expect(await db.query(`SELECT order_key, count(*)::int AS heads FROM jobs WHERE is_head GROUP BY order_key ORDER BY order_key`)).toEqual([
      { order_key: 'a', heads: 1 },
      { order_key: 'b', heads: 1 },
      { order_key: 'c', heads: 1 },
    ]);
  });

  test('refuses a database migrated by a newer version', async () => {
    const fresh = await createTestDatabase();
    try {
      await fresh.query('CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)');
      await fresh.query("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)");
      await expect(PostgresStore.open(fresh.url)).rejects.toThrow(/schema version 999 is newer/);
    } finally {
      await fresh.drop();
    }
  });

  test('concurrent enqueues share commits, and each call gets its own outcome', async () => {
    const batches: Array<{ calls: number; jobs: number; stored: number }> = [];
    const store = await open({ onBatchCommit: (batch) => batches.push(batch), maxConcurrentBatches: 2 });
    // Calls 150..199 repeat the dedup keys of calls 0..49; the first of each key is the one stored.
    const calls = Array.from({ length: 200 }, (_, call) =>
      store.enqueue([job(`user-${call % 7}`, { call }, { dedupKey: `msg-${call % 150}` })]),
    );
    const results = await Promise.all(calls);
    results.forEach(([result], call) => expect(result!.outcome).toBe(call < 150 ? 'stored' : 'duplicate'));
    expect(batches.reduce((sum, batch) => sum + batch.calls, 0)).toBe(200);
    expect(batches.reduce((sum, batch) => sum + batch.stored, 0)).toBe(150);
    expect(batches.length).toBeLessThan(200);

    await expectDrainedOnceInKeyOrder(store, 150, 7);
  });

  test('keys PostgreSQL cannot store are refused per call; odd error texts are stored cleaned', async () => {
    const store = await open();
    const good = store.enqueue([job('a', 'ok')]);
    await expect(store.enqueue([job('nul\u0000key', 1)])).rejects.toThrow(/NUL/);
    await expect(store.enqueue([job('a', 2, { dedupKey: 'lone \uD800 surrogate' })])).rejects.toThrow(/surrogate/);
    await expect(good).resolves.toEqual([{ outcome: 'stored' }]);
    // In the payload they are JSON escapes and survive as they were.
    await expect(store.enqueue([job('b', { text: 'nul \u0000 and \uDC00' })])).resolves.toEqual([{ outcome: 'stored' }]);
    const claimed = await store.claim({ limit: 10, leaseMs: 1_000 });
    expect(claimed.map((each) => each.payload)).toEqual(['ok', { text: 'nul \u0000 and \uDC00' }]);
    await expect(store.retry(claimed[0]!, Date.now(), 'bad \u0000 byte')).resolves.toBe(true);
    await expect(store.markSeen('seen \u0000 key', Date.now() + 1_000)).resolves.toBe(true);
  });

  test('asking whether a key is seen writes nothing', async () => {
    const store = await open();
    await store.markSeen('probe-live', Date.now() + 60_000);
    await expect(wasSeen(store, 'probe-live')).resolves.toBe(true);
    await expect(wasSeen(store, 'probe-never-seen')).resolves.toBe(false);
    const rows = await db.query("SELECT key FROM seen_keys WHERE key LIKE 'probe-%' ORDER BY key");
    expect(rows).toEqual([{ key: 'probe-live' }]);
  });

  test('leases are measured on the database clock by default', async () => {
    const store = await open();
    await store.enqueue([job('a', 'a1')]);
    const [claimed] = await store.claim({ limit: 1, leaseMs: 60_000 });
    const [row] = await db.query<{ lease_ms: string; now_ms: string }>(
      'SELECT lease_until - created_at AS lease_ms, bridge_now_ms() - created_at AS now_ms FROM jobs WHERE seq = $1',
      [claimed!.id],
    );
    expect(Number(row!.lease_ms)).toBeGreaterThanOrEqual(60_000);
    expect(Number(row!.lease_ms)).toBeLessThan(60_000 + 5_000);
    expect(Math.abs(claimed!.createdAt - Date.now())).toBeLessThan(60_000);
  });

  test('a connection the server terminates is replaced: no crash, the next calls work', async () => {
    const warnings: string[] = [];
    const store = await open({ logger: { warn: (_details, message) => warnings.push(message) } });
    await store.enqueue([job('a', 'before')]);
    await store.ping();
    // The server ends every session of this database (what a restart or failover does to idle connections).
    await runQuery(POSTGRES_ADMIN_URL, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
      db.name,
    ]);
    await waitFor(() => warnings.some((message) => message.includes('idle PostgreSQL connection lost')));
    await expect(store.ping()).resolves.toBeUndefined();
    await expect(store.enqueue([job('a', 'after')])).resolves.toEqual([{ outcome: 'stored' }]);
    expect((await store.stats()).depth).toEqual({ deliver: 2 });
  });

  test('a statement that cannot finish is given up in time, and the store carries on', async () => {
    const store = await open({ statementTimeoutMs: 300, enqueueTimeoutMs: 1_000 });
    // Another session holds a lock every write to jobs needs.
    const blocker = new Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      await expect(store.enqueue([job('a', 'blocked')])).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(3_000);
      await expect(store.claim({ limit: 1, leaseMs: 1_000 })).rejects.toThrow();
      await blocker.query('ROLLBACK');
    } finally {
      await blocker.end();
    }
    await expect(store.enqueue([job('a', 'unblocked')])).resolves.toEqual([{ outcome: 'stored' }]);
  });

  test('a closed store rejects every call; close writes what was pending', async () => {
    const store = await PostgresStore.open(db.url);
    const pending = store.enqueue([job('a', 'written at close')]);
    await store.close();
    await store.close();
    await expect(pending).resolves.toEqual([{ outcome: 'stored' }]);
    await expect(store.enqueue([job('a', 1)])).rejects.toThrow('closed');
    await expect(store.claim({ limit: 1, leaseMs: 1_000 })).rejects.toThrow('closed');
    await expect(store.ping()).rejects.toThrow('closed');
    expect(await db.query('SELECT payload FROM jobs')).toEqual([{ payload: '"written at close"' }]);
  });
});

describe('openStore with PostgreSQL URLs', () => {
  test('postgres:// and postgresql:// both open the PostgreSQL store', async () => {
    for (const url of [db.url, db.url.replace(/^postgres:/, 'postgresql:')]) {
      const store = await openStore(url, { releaseLeasesOnOpen: true });
      expect(store).toBeInstanceOf(PostgresStore);
      await store.ping();
      await store.close();
    }
  });

  test('leases are not released at open: another instance may be holding them', async () => {
    await db.query(`TRUNCATE ${TABLES} RESTART IDENTITY`);
    const first = await openStore(db.url);
    await first.enqueue([job('a', 'held')]);
    expect(await first.claim({ limit: 1, leaseMs: 60_000 })).toHaveLength(1);
    const second = await openStore(db.url, { releaseLeasesOnOpen: true });
    try {
      expect(await second.claim({ limit: 1, leaseMs: 60_000 })).toEqual([]);
    } finally {
      await second.close();
      await first.close();
    }
  });

  test('an unreachable server fails fast, and no error ever shows the password', async () => {
    const port = await freePort(); // nothing listens there
    const attempt = openStore(`postgres://bridge:hunter2secret@127.0.0.1:${port}/bridge`);
    await expect(attempt).rejects.toThrow(/ECONNREFUSED|connect/);
    await expect(attempt).rejects.not.toThrow(/hunter2secret/);

    const wrongPassword = openStore(`postgres://no_such_user:hunter2secret@127.0.0.1:5432/postgres`);
    await expect(wrongPassword).rejects.toThrow(/PostgreSQL/);
    await expect(wrongPassword).rejects.not.toThrow(/hunter2secret/);

    const malformed = openStore('postgres://bridge:hunter2secret@[not-a-host/bridge');
    await expect(malformed).rejects.toThrow(/not a valid URL/);
    await expect(malformed).rejects.not.toThrow(/hunter2secret/);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}
