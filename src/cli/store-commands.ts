/**
 * The commands that read or change the bridge's store: `queue` and `dead-letters …`.
 */
import type { DeadLetter, Store } from '../store/store';
import { JSON_OPTION, type CliContext, type CommandSpec, type ParsedArgs } from './command';
import { DeadLetterAdmin } from './dead-letter-admin';
import { accountOfJobPayload } from './account';
import { CliFailure, UsageError } from './errors';
import { formatDuration, formatTime, oneLine, table } from './format';
import { openCliStore } from './store';

const DEFAULT_LIST_LIMIT = 20;
const MAX_LIST_LIMIT = 10_000;
const STORE_NOTE = 'Reads DATABASE_URL (default sqlite:./data/bridge.db) from the environment or ./.env, like the bridge.';

async function withStore<T>(context: CliContext, use: (store: Store) => Promise<T>): Promise<T> {
  const store = await openCliStore(context.env, context.cwd);
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

const printJson = (context: CliContext, value: unknown) => context.print(`${JSON.stringify(value, null, 2)}\n`);

/** `<id>` or `--all`, exactly one of them. */
function target(args: ParsedArgs, command: string): { all: true } | { all: false; id: string } {
  const id = args.positionals[0];
  if (args.values.all === true && id !== undefined) throw new UsageError('give a dead letter id or --all, not both', command);
  if (args.values.all === true) return { all: true };
  if (id === undefined || id.trim() === '') throw new UsageError('which dead letter? give its id (see `dead-letters list`) or --all', command);
  return { all: false, id: id.trim() };
}

const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

export const queueCommand: CommandSpec = {
  name: 'queue',
  args: '[--json]',
  summary: 'jobs waiting per kind, the oldest job\'s age, the dead letters count',
  details: [
    'Shows the live jobs (waiting, retrying or running) per kind, how long the oldest has been in the',
    'queue, and how many dead letters wait for an operator.',
    '',
    STORE_NOTE,
  ].join('\n'),
  options: { json: JSON_OPTION },
  positionals: { min: 0, max: 0 },
  run: (args, context) =>
    withStore(context, async (store) => {
      const stats = await store.stats();
      const kinds = Object.entries(stats.depth).sort(([a], [b]) => a.localeCompare(b));
      const total = kinds.reduce((sum, [, depth]) => sum + depth, 0);
      if (args.values.json) {
        printJson(context, { depth: Object.fromEntries(kinds), total, oldestAgeMs: stats.oldestAgeMs, deadLetters: stats.deadLetters });
        return;
      }
      const lines: string[] = [];
      if (total === 0) lines.push('Jobs waiting: none');
      else {
        lines.push('Jobs waiting (pending, retrying or running):');
        const width = Math.max(...kinds.map(([kind]) => kind.length), 'total'.length);
        for (const [kind, depth] of kinds) lines.push(`  ${kind.padEnd(width)}  ${depth}`);
        lines.push(`  ${'total'.padEnd(width)}  ${total}`);
        lines.push(`Oldest job: ${formatDuration(stats.oldestAgeMs)} in the queue`);
      }
      lines.push(
        stats.deadLetters === 0
          ? 'Dead letters: none'
          : `Dead letters: ${stats.deadLetters} (see: wechat-bridge dead-letters list)`,
      );
      context.print(`${lines.join('\n')}\n`);
    }),
};

export const listCommand: CommandSpec = {
  name: 'dead-letters list',
  args: '[--limit <n>] [--account <id>] [--json]',
  summary: 'dead letters, newest first',
  details: [
    'Lists dead letters, newest first: jobs the bridge gave up on (a permanent refusal, or still',
    'failing after 24 hours), with the reason. `dead-letters show <id>` prints one in full.',
    'With --account <id>, only those of one Official Account (WECHAT_ACCOUNTS_FILE): inbound messages it',
    'received and outbound messages that named it.',
    '',
    STORE_NOTE,
  ].join('\n'),
  options: {
    limit: { type: 'string', valueName: 'n', description: `how many to show (default ${DEFAULT_LIST_LIMIT}, at most ${MAX_LIST_LIMIT})` },
    account: { type: 'string', valueName: 'id', description: 'only the dead letters of this Official Account' },
    json: JSON_OPTION,
  },
  positionals: { min: 0, max: 0 },
  run: (args, context) => {
    const limit = parseLimit(args.values.limit);
    return withStore(context, async (store) => {
      const admin = new DeadLetterAdmin(store);
      const account = typeof args.values.account === 'string' ? args.values.account : undefined;
      const letters =
        account === undefined
          ? await admin.list(limit)
          : (await admin.list(MAX_LIST_LIMIT)).filter((letter) => accountOfJobPayload(letter.payload) === account).slice(0, limit);
      if (args.values.json) {
        printJson(context, letters);
        return;
      }
      if (letters.length === 0) {
        context.print('No dead letters.\n');
        return;
      }
      const rows = letters.map((letter) => [
        letter.id,
        formatTime(letter.deadAt),
        letter.kind,
        String(letter.attempts),
        oneLine(letter.reason, 80),
      ]);
      let text = table(['ID', 'DEAD SINCE (UTC)', 'KIND', 'ATTEMPTS', 'REASON'], rows);
      const total = account === undefined ? await admin.count() : letters.length;
      if (total > letters.length) text += `\n(${letters.length} of ${total} shown; --limit ${Math.min(total, MAX_LIST_LIMIT)} shows more)`;
      context.print(`${text}\n`);
    });
  },
};

function parseLimit(value: string | boolean | undefined): number {
  if (value === undefined) return DEFAULT_LIST_LIMIT;
  const limit = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIST_LIMIT)) {
    throw new UsageError(`--limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`, 'dead-letters list');
  }
  return limit;
}

export const showCommand: CommandSpec = {
  name: 'dead-letters show',
  args: '<id> [--json]',
  summary: 'one dead letter in full, payload included',
  details: ['Prints one dead letter: its job kind, order key, attempts, times, reason and payload.', '', STORE_NOTE].join('\n'),
  options: { json: JSON_OPTION },
  positionals: { min: 1, max: 1 },
  run: (args, context) => {
    const id = args.positionals[0]!.trim();
    return withStore(context, async (store) => {
      const letter = await new DeadLetterAdmin(store).get(id);
      if (!letter) throw new CliFailure(`no dead letter with id ${JSON.stringify(id)} (see: wechat-bridge dead-letters list)`);
      if (args.values.json) {
        printJson(context, letter);
        return;
      }
      context.print(`${describe(letter, context.now())}\n`);
    });
  },
};

function describe(letter: DeadLetter, now: number): string {
  const payload = JSON.stringify(letter.payload, null, 2) ?? 'undefined';
  return [
    `Dead letter ${letter.id}`,
    `  kind:        ${letter.kind}`,
    `  order key:   ${letter.orderKey}`,
    `  attempts:    ${letter.attempts}`,
    `  created:     ${formatTime(letter.createdAt)} (${formatDuration(now - letter.createdAt)} ago)`,
    `  dead since:  ${formatTime(letter.deadAt)} (${formatDuration(now - letter.deadAt)} ago)`,
    `  reason:      ${oneLine(letter.reason)}`,
    '  payload:',
    payload.replace(/^/gm, '    '),
  ].join('\n');
}

export const replayCommand: CommandSpec = {
  name: 'dead-letters replay',
  args: '<id> | --all [--json]',
  summary: 'put dead letters back on the queue as fresh jobs',
  details: [
    'Puts a dead letter (or, with --all, every dead letter there is now) back on the queue as a new job',
    'with its attempts reset. The running bridge picks it up like any other job; fix the cause first',
    '(a wrong conversation id, an expired media id), or it will be dead-lettered again.',
    '',
    STORE_NOTE,
  ].join('\n'),
  options: { all: { type: 'boolean', description: 'replay every dead letter' }, json: JSON_OPTION },
  positionals: { min: 0, max: 1 },
  run: (args, context) => {
    const which = target(args, 'dead-letters replay');
    return withStore(context, async (store) => {
      const admin = new DeadLetterAdmin(store);
      const ids = which.all ? (await admin.all()).map((letter) => letter.id) : [which.id];
      const replayed: string[] = [];
      const missing: string[] = [];
      for (const id of ids) (await admin.replay(id) ? replayed : missing).push(id);
      if (!which.all && missing.length > 0) {
        throw new CliFailure(`no dead letter with id ${JSON.stringify(which.id)} (see: wechat-bridge dead-letters list)`);
      }
      if (args.values.json) printJson(context, { replayed, missing });
      else if (!which.all) context.print(`Replayed dead letter ${which.id}: it is queued again as a new job.\n`);
      else if (ids.length === 0) context.print('No dead letters to replay.\n');
      else {
        // `missing` here were removed by someone else between the snapshot and the replay.
        const gone = missing.length > 0 ? ` (${missing.length} had already gone)` : '';
        const jobs = replayed.length === 1 ? 'a new job' : 'new jobs';
        context.print(`Replayed ${plural(replayed.length, 'dead letter')}${gone}: queued again as ${jobs}.\n`);
      }
    });
  },
};

export const purgeCommand: CommandSpec = {
  name: 'dead-letters purge',
  args: '<id> | --all [--yes] [--json]',
  summary: 'delete dead letters for good',
  details: [
    'Deletes a dead letter (or, with --all, every dead letter there is now) for good: its message is',
    'never delivered. Asks for confirmation on a terminal; --yes skips the question, and is required',
    'when there is no terminal to ask on (scripts, pipes).',
    '',
    STORE_NOTE,
  ].join('\n'),
  options: {
    all: { type: 'boolean', description: 'purge every dead letter' },
    yes: { type: 'boolean', short: 'y', description: 'do not ask for confirmation' },
    json: JSON_OPTION,
  },
  positionals: { min: 0, max: 1 },
  run: (args, context) => {
    const which = target(args, 'dead-letters purge');
    return withStore(context, async (store) => {
      const admin = new DeadLetterAdmin(store);
      let ids: string[];
      let question: string;
      if (which.all) {
        ids = (await admin.all()).map((letter) => letter.id);
        if (ids.length === 0) {
          if (args.values.json) printJson(context, { purged: [], missing: [] });
          else context.print('No dead letters to purge.\n');
          return;
        }
        question = `Purge all ${plural(ids.length, 'dead letter')}? Their messages will never be delivered. [y/N] `;
      } else {
        const letter = await admin.get(which.id);
        if (!letter) throw new CliFailure(`no dead letter with id ${JSON.stringify(which.id)} (see: wechat-bridge dead-letters list)`);
        ids = [letter.id];
        question = `Purge dead letter ${letter.id} (${letter.kind}, ${oneLine(letter.reason, 60)})? It will never be delivered. [y/N] `;
      }
      await confirmOrStop(args, context, question);

      const purged: string[] = [];
      const missing: string[] = [];
      for (const id of ids) (await admin.purge(id) ? purged : missing).push(id);
      if (args.values.json) printJson(context, { purged, missing });
      else if (!which.all) context.print(`Purged dead letter ${which.id}.\n`);
      else context.print(`Purged ${plural(purged.length, 'dead letter')}.\n`);
    });
  },
};

async function confirmOrStop(args: ParsedArgs, context: CliContext, question: string): Promise<void> {
  if (args.values.yes === true) return;
  if (!context.confirm) {
    throw new UsageError('purging deletes for good: add --yes to confirm (there is no terminal to ask on)', 'dead-letters purge');
  }
  if (!(await context.confirm(question))) throw new CliFailure('not confirmed: nothing purged');
}
