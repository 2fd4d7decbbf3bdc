/**
 * How the CLI fails. Two classes, two exit codes:
 *
 * - UsageError: the command line is wrong (unknown command, missing or extra argument, bad option
 *   value). The message and the usage of `topic` go to stderr; exit code 2.
 * - anything else: the operation failed (store unreachable, WeChat refused). One line on stderr;
 *   exit code 1.
 */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export type ExitCode = typeof EXIT_OK | typeof EXIT_FAILURE | typeof EXIT_USAGE;

export class UsageError extends Error {
  /** The command whose usage is printed with the message ('' for the top level). */
  readonly topic: string;
  constructor(message: string, topic: string) {
    super(message);
    this.name = 'UsageError';
    this.topic = topic;
  }
}

/** An operation that cannot run, with a message for the operator (exit code 1). */
export class CliFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliFailure';
  }
}
