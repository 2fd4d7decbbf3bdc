import type { BatchCommit } from '../../../src/store/backend-options';
import { GroupCommit, type PendingEnqueue } from '../../../src/store/group-commit';
import { prepareJob } from '../../../src/store/jobs';

const job = (n: number) => prepareJob({ kind: 'deliver', orderKey: `user-${n}`, payload: n });
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A write that stores every job and settles its batch when the test says so. */
function controlledWrites() {
  const batches: Array<{ calls: PendingEnqueue[]; finish: () => void }> = [];
  const write = (batch: PendingEnqueue[], committed: (tally: BatchCommit) => void) =>
    new Promise<void>((resolve) => {
      batches.push({
        calls: batch,
        finish: () => {
          for (const call of batch) call.resolve(call.jobs.map(() => ({ outcome: 'stored' as const })));
          committed({ calls: batch.length, jobs: batch.reduce((sum, call) => sum + call.jobs.length, 0), stored: 0 });
          resolve();
        },
      });
    });
  return { batches, write };
}

describe('GroupCommit', () => {
  test('the calls of one turn are one batch; calls made while it is in flight are the next', async () => {
    const { batches, write } = controlledWrites();
    const group = new GroupCommit({ write, maxConcurrentBatches: 1 });
    const first = [group.add([job(1)], []), group.add([job(2)], [])];
    await turn();
    expect(batches.map((batch) => batch.calls.length)).toEqual([2]);
    const later = [group.add([job(3)], []), group.add([job(4)], []), group.add([job(5)], [])];
    await turn();
    expect(batches).toHaveLength(1);
    batches[0]!.finish();
    await expect(Promise.all(first)).resolves.toEqual([[{ outcome: 'stored' }], [{ outcome: 'stored' }]]);
    expect(batches.map((batch) => batch.calls.length)).toEqual([2, 3]);
    batches[1]!.finish();
    await Promise.all(later);
  });

  test('a batch holds at most maxBatchJobs jobs, but a larger call is still written, alone', async () => {
    const { batches, write } = controlledWrites();
    const group = new GroupCommit({ write, maxBatchJobs: 2 });
    const calls = [group.add([job(1), job(2), job(3)], []), group.add([job(4)], []), group.add([job(5)], [])];
    await turn();
    expect(batches.map((batch) => batch.calls.map((call) => call.jobs.length))).toEqual([[3], [1, 1]]);
    for (const batch of batches) batch.finish();
    await Promise.all(calls);
  });

  test('nothing to write resolves at once, without a batch', async () => {
    const { batches, write } = controlledWrites();
    const group = new GroupCommit({ write });
    await expect(group.add([], [])).resolves.toEqual([]);
    await turn();
    expect(batches).toEqual([]);
  });

  test('a call not settled by its deadline is rejected, and left out of a batch it had not joined yet', async () => {
    const { batches, write } = controlledWrites();
    const group = new GroupCommit({ write, maxConcurrentBatches: 1, timeoutMs: 50 });
    const inFlight = group.add([job(1)], []);
    await turn();
    const waiting = group.add([job(2)], []);
    await expect(inFlight).rejects.toThrow('enqueue not committed within 50 ms');
    await expect(waiting).rejects.toThrow('enqueue not committed within 50 ms');
    const fresh = group.add([job(3)], []);
    // The write settling the timed-out call afterwards changes nothing for its caller.
    batches[0]!.finish();
    await turn();
    expect(batches[1]!.calls.map((call) => call.jobs[0]!.orderKey)).toEqual(['user-3']);
    batches[1]!.finish();
    await expect(fresh).resolves.toEqual([{ outcome: 'stored' }]);
  });

  test('the metrics hook hears of each commit; one that throws is logged, and the batch stands', async () => {
    const { batches, write } = controlledWrites();
    const warnings: string[] = [];
    const group = new GroupCommit({
      write,
      onBatchCommit: () => {
        throw new Error('hook broke');
      },
      logger: { warn: (_details, message) => warnings.push(message) },
    });
    const call = group.add([job(1)], []);
    await turn();
    batches[0]!.finish();
    await expect(call).resolves.toEqual([{ outcome: 'stored' }]);
    expect(warnings).toEqual(['onBatchCommit hook threw']);
  });

  test('drain writes what waits and resolves once no batch is in flight', async () => {
    const { batches, write } = controlledWrites();
    const group = new GroupCommit({ write });
    const call = group.add([job(1)], []);
    let drained = false;
    const draining = group.drain().then(() => (drained = true));
    expect(batches).toHaveLength(1);
    await turn();
    expect(drained).toBe(false);
    batches[0]!.finish();
    await draining;
    await expect(call).resolves.toEqual([{ outcome: 'stored' }]);
  });
});
