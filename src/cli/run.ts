/**
 * `wechat-bridge <command> …`: argument parsing, dispatch, help and exit codes. No I/O of its own
 * beyond what `CliIo` gives it, so that it runs the same from main.ts and anywhere else.
 */
import { parseArgs } from 'node:util';
import type { CliContext, CommandSpec, ParsedArgs } from './command';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type ExitCode } from './errors';
import { oneLine, redactSecrets } from './format';
import { sendTestCommand } from './send-test';
import { listCommand, purgeCommand, queueCommand, replayCommand, showCommand } from './store-commands';
import { windowCommand } from './window-command';

export const PROGRAM = 'wechat-bridge';

export const COMMANDS: readonly CommandSpec[] = [queueCommand, listCommand, showCommand, replayCommand, purgeCommand, sendTestCommand, windowCommand];

/** Command words that only group subcommands. */
const GROUPS: Readonly<Record<string, string>> = {
  'dead-letters': 'inspect, replay and purge dead letters (jobs the bridge gave up on)',
};

export interface CliIo {
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Asks a yes/no question; leave undefined when stdin is not an interactive terminal. */
  confirm?: (question: string) => Promise<boolean>;
  now?: () => number;
}

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h';

/** Runs one command line (without `node` and the script) and resolves its exit code. Never rejects. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const context: CliContext = {
    env: io.env,
    cwd: io.cwd,
    print: (text) => io.stdout.write(text),
    confirm: io.confirm,
    now: io.now ?? Date.now,
  };
  try {
    const selected = select(argv);
    if (selected.kind === 'help') {
      io.stdout.write(helpFor(selected.topic));
      return EXIT_OK;
    }
    const { command, rest } = selected;
    // `--help` anywhere before a `--` wins over everything else on the line, wrong options included.
    const beforeTerminator = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (beforeTerminator.some(isHelp)) {
      io.stdout.write(helpFor(command.name));
      return EXIT_OK;
    }
    await command.run(parse(command, rest), context);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`${PROGRAM}: ${error.message}\n\n${usageFor(error.topic)}\n`);
      return EXIT_USAGE;
    }
    // CliFailure messages are written for the operator; anything else is shown as it is, on one line.
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`${PROGRAM}: ${oneLine(redactSecrets(message, io.env))}\n`);
    return EXIT_FAILURE;
  }
}

type Selection = { kind: 'help'; topic: string } | { kind: 'command'; command: CommandSpec; rest: string[] };

function select(argv: readonly string[]): Selection {
  const [first, second, ...more] = argv;
  if (first === undefined) throw new UsageError('no command given', '');
  if (isHelp(first)) return { kind: 'help', topic: '' };
  if (first === 'help') {
    const topic = argv.slice(1).join(' ');
    if (topic !== '' && !isTopic(topic)) throw new UsageError(`no help for ${JSON.stringify(topic)}: not a command`, '');
    return { kind: 'help', topic };
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option ${JSON.stringify(first)}; options go after the command`, '');

  if (Object.hasOwn(GROUPS, first)) {
    if (second === undefined) throw new UsageError(`${first} needs a subcommand`, first);
    if (isHelp(second)) return { kind: 'help', topic: first };
    const command = COMMANDS.find((candidate) => candidate.name === `${first} ${second}`);
    if (!command) throw new UsageError(`unknown ${first} command ${JSON.stringify(second)}`, first);
    return { kind: 'command', command, rest: more };
  }
  const command = COMMANDS.find((candidate) => candidate.name === first);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(first)}`, '');
  return { kind: 'command', command, rest: argv.slice(1) };
}

const isTopic = (topic: string) => Object.hasOwn(GROUPS, topic) || COMMANDS.some((command) => command.name === topic);

function parse(command: CommandSpec, rest: string[]): ParsedArgs {
  const options = Object.fromEntries(
    Object.entries(command.options).map(([name, spec]) => [name, spec.short ? { type: spec.type, short: spec.short } : { type: spec.type }]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util's messages name the option and say what is wrong with it; the first line is enough.
    throw new UsageError((error instanceof Error ? error.message : String(error)).split('\n')[0]!, command.name);
  }
  const { min, max, hint } = command.positionals;
  const count = parsed.positionals.length;
  if (count < min || count > max) {
    const expected = min === max ? `${min}` : `${min} to ${max}`;
    throw new UsageError(hint ?? `${command.name} takes ${expected} argument${max === 1 ? '' : 's'}, got ${count}`, command.name);
  }
  return { values: parsed.values as ParsedArgs['values'], positionals: parsed.positionals };
}

// ---------------------------------------------------------------------------------------------
// Help

const EXIT_CODES = [
  'Exit codes: 0 done; 1 the operation failed (store unreachable, WeChat refused, bad settings);',
  '2 the command line is wrong (unknown command, missing or bad argument).',
].join('\n');

const signature = (command: CommandSpec) => `${command.name} ${command.args}`.trimEnd();

function commandList(commands: readonly CommandSpec[]): string {
  const width = Math.max(...commands.map((command) => signature(command).length));
  return commands.map((command) => `  ${signature(command).padEnd(width)}  ${command.summary}`).join('\n');
}

/** The short usage printed with a usage error. */
function usageFor(topic: string): string {
  const command = COMMANDS.find((candidate) => candidate.name === topic);
  if (command) return `Usage: ${PROGRAM} ${signature(command)}\nRun '${PROGRAM} ${command.name} --help' for details.`;
  if (Object.hasOwn(GROUPS, topic)) {
    return `Usage: ${PROGRAM} ${topic} <command>\n\n${commandList(COMMANDS.filter((c) => c.name.startsWith(`${topic} `)))}`;
  }
  return `Usage: ${PROGRAM} <command> [options]\n\n${commandList(COMMANDS)}\n\nRun '${PROGRAM} --help' for details.`;
}

/** The full help for a topic: '' (everything), a group, or a command. */
export function helpFor(topic: string): string {
  const command = COMMANDS.find((candidate) => candidate.name === topic);
  if (command) {
    const options = Object.entries(command.options).map(([name, spec]) => {
      const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.valueName ? ` <${spec.valueName}>` : ''}`;
      return [flag, spec.description] as const;
    });
    options.push(['-h, --help', 'show this help']);
    const width = Math.max(...options.map(([flag]) => flag.length));
    return [
      `Usage: ${PROGRAM} ${signature(command)}`,
      '',
      command.details,
      '',
      'Options:',
      ...options.map(([flag, description]) => `  ${flag.padEnd(width)}  ${description}`),
      '',
      EXIT_CODES,
      '',
    ].join('\n');
  }
  if (Object.hasOwn(GROUPS, topic)) {
    return [
      `Usage: ${PROGRAM} ${topic} <command> [options]`,
      '',
      `${topic}: ${GROUPS[topic]}.`,
      '',
      'Commands:',
      commandList(COMMANDS.filter((c) => c.name.startsWith(`${topic} `))),
      '',
      `Run '${PROGRAM} ${topic} <command> --help' for a command's details.`,
      '',
    ].join('\n');
  }
  return [
    `${PROGRAM}: the operator's tool for a wechat-conversation-bridge: queue state, dead letters, a test message.`,
    '',
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Commands:',
    commandList(COMMANDS),
    '',
    `Run '${PROGRAM} <command> --help' (or '${PROGRAM} help <command>') for a command's details.`,
    '',
    'Settings come from the environment and ./.env, as for the bridge; each command needs only its own:',
    '  queue, dead-letters …  DATABASE_URL (default sqlite:./data/bridge.db)',
    '  send-test              WECHAT_APP_ID, WECHAT_APP_SECRET, WECHAT_API_BASE_URL (default https://api.weixin.qq.com)',
    '',
    EXIT_CODES,
    '',
  ].join('\n');
}
