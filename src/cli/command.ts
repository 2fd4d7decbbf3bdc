/**
 * The shape of one CLI command, and what it gets to run. Commands are declared as data (name,
 * usage, options, help text) so that dispatch, argument checks and `--help` are written once.
 */
export interface CliContext {
  env: NodeJS.ProcessEnv;
  /** Base for relative paths (the SQLite file), normally process.cwd(). */
  cwd: string;
  /** Writes text to stdout (the caller adds no newline). */
  print(text: string): void;
  /** Asks a yes/no question on an interactive terminal; undefined when there is none to ask. */
  confirm: ((question: string) => Promise<boolean>) | undefined;
  now: () => number;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface OptionSpec {
  type: 'boolean' | 'string';
  short?: string;
  /** `--limit <n>`: the value's name in help. */
  valueName?: string;
  description: string;
}

export interface CommandSpec {
  /** Words that select it: `queue`, `dead-letters list`. */
  name: string;
  /** Arguments after the name, as shown in usage: `<id> | --all [--yes]`. */
  args: string;
  summary: string;
  /** Paragraphs shown by `--help` after the usage line. */
  details: string;
  options: Record<string, OptionSpec>;
  /** Positional argument counts accepted (checked before `run`), and what to say when they are wrong. */
  positionals: { min: number; max: number; hint?: string };
  run(args: ParsedArgs, context: CliContext): Promise<void>;
}

export const JSON_OPTION: OptionSpec = { type: 'boolean', description: 'print JSON instead of text, for scripts' };
