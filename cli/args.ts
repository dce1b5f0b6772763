// A small command-line parser for the CLI's commands: positional arguments, `--flag`, `--option VALUE` and
// `--option=VALUE`. Unknown options and missing values are usage errors with one clear line.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  readonly positional: string[];
  /** Option name (without dashes) -> value ('' for flags). */
  readonly options: Map<string, string>;
}

/** `valued`: options that take a value; `flags`: options that do not. Repeating an option is an error. */
export function parseArgs(args: readonly string[], valued: readonly string[], flags: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--') || arg === '--') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (options.has(name)) throw new UsageError(`--${name} is given twice`);
    if (flags.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      options.set(name, '');
    } else if (valued.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : args[++i];
      if (value === undefined || (eq < 0 && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      options.set(name, value);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { positional, options };
}

/** A number option, checked: `integer` and/or `min` (inclusive). Undefined when absent. */
export function numberOption(
  parsed: ParsedArgs,
  name: string,
  check: { integer?: boolean; min?: number; positive?: boolean } = {},
): number | undefined {
  const text = parsed.options.get(name);
  if (text === undefined) return undefined;
  const value = Number(text);
  const ok =
    text.trim() !== '' &&
    Number.isFinite(value) &&
    (!check.integer || Number.isInteger(value)) &&
    (check.min === undefined || value >= check.min) &&
    (!check.positive || value > 0);
  if (!ok) {
    const kind = check.integer ? 'a whole number' : 'a number';
    const bound = check.positive ? ' > 0' : check.min !== undefined ? ` >= ${check.min}` : '';
    throw new UsageError(`--${name} must be ${kind}${bound}, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** A choice option, checked against `choices`. Undefined when absent. */
export function choiceOption<T extends string>(parsed: ParsedArgs, name: string, choices: readonly T[]): T | undefined {
  const value = parsed.options.get(name);
  if (value === undefined) return undefined;
  if (!choices.includes(value as T)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not ${JSON.stringify(value)}`);
  }
  return value as T;
}
