import { parseArgs, type ParseArgsConfig } from 'node:util';
import { usageError } from './cli-error';

/** Seconds a command may take before it gives up, unless --timeout says otherwise. */
export const DEFAULT_TIMEOUT_SECONDS = 15;

interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
}

const TEXT: OptionSpec = { type: 'string' };
const TEXTS: OptionSpec = { type: 'string', multiple: true };
const FLAG: OptionSpec = { type: 'boolean' };

/** Options every command takes. */
const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  address: TEXT,
  json: FLAG,
  timeout: TEXT,
  'id-token-audience': TEXT,
  'id-token-file': TEXT,
  tls: FLAG,
  'tls-ca': TEXT,
  'tls-cert': TEXT,
  'tls-key': TEXT,
  help: { type: 'boolean', short: 'h' },
};

/** Each command's own options. An option shared by two commands has the same type in both. */
const COMMAND_OPTIONS = {
  exchange: { code: TEXT, 'redirect-uri': TEXT },
  token: { user: TEXT, scope: TEXTS, 'min-ttl': TEXT },
  profile: { user: TEXT },
  status: { user: TEXT },
  revoke: { user: TEXT },
  health: { service: TEXT },
  'dev-signin': { email: TEXT, name: TEXT, sub: TEXT, scope: TEXTS, consent: FLAG, 'oauth-url': TEXT },
} satisfies Record<string, Record<string, OptionSpec>>;

/** Names of the CLI's commands. */
export type CommandName = keyof typeof COMMAND_OPTIONS;

/** Options that apply to every command. */
export interface GlobalOptions {
  /** host:port from --address; undefined means "find it" (env, dev stack, default). */
  address?: string;
  json: boolean;
  timeoutMs: number;
  /** How the CLI proves who it is and secures the channel. */
  credentials: CredentialOptions;
}

/**
 * Caller credentials from the command line. File paths only: the CLI reads
 * them when it connects, and never prints what they hold.
 */
export interface CredentialOptions {
  /** --id-token-audience: mint a Google ID token for this audience (google-auth-library, on GCP). */
  idTokenAudience?: string;
  /** --id-token-file: a ready ID token in this file. */
  idTokenFile?: string;
  /** --tls, or implied by any --tls-* option: connect over TLS. */
  tls: boolean;
  /** --tls-ca: CA certificate(s) (PEM) to trust instead of the system's. */
  tlsCaFile?: string;
  /** --tls-cert and --tls-key: a client certificate (PEM) for mutual TLS. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
}

/** A parsed command with its validated options. */
export type Command =
  | { name: 'exchange'; code: string; redirectUri: string }
  | { name: 'token'; userId: string; scopes: string[]; minTtlSeconds?: number }
  | { name: 'profile'; userId: string }
  | { name: 'status'; userId: string }
  | { name: 'revoke'; userId: string }
  | { name: 'health'; service: string }
  | {
      name: 'dev-signin';
      email?: string;
      displayName?: string;
      sub?: string;
      scopes: string[];
      consent: boolean;
      oauthUrl?: string;
    };

/** What the command line asks for: the usage text, or a command to run. */
export type Invocation =
  | { kind: 'help'; requested: boolean }
  | { kind: 'run'; global: GlobalOptions; command: Command };

type Values = Map<string, string | string[] | true>;

// parseArgs lexes with every option known, so a value after a string option of any
// command is consumed as its value; which options a command accepts is checked after.
const LEXER_OPTIONS: NonNullable<ParseArgsConfig['options']> = Object.fromEntries(
  [GLOBAL_OPTIONS, ...Object.values(COMMAND_OPTIONS)].flatMap((specs) =>
    Object.entries(specs).map(([name, spec]) => [name, { ...spec }]),
  ),
);

/** True when the command line asks for JSON output, even if it is otherwise malformed. */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * Parses the command line. Throws a usage CliError on any mistake. Its
 * messages never quote an argument's value: `exchange 4/0Ab...` (a code
 * without --code) must not print the code back.
 */
export function parseInvocation(argv: readonly string[]): Invocation {
  // strict: false because parseArgs' own errors quote arguments; tokens are checked here instead.
  const { tokens } = parseArgs({ args: [...argv], options: LEXER_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  let commandWord: string | undefined;
  let extraPositional = false;
  const optionTokens: OptionToken[] = [];
  let terminated = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') terminated = true;
    else if (token.kind === 'option') optionTokens.push(token);
    else if (commandWord === undefined && !terminated) commandWord = token.value;
    else extraPositional = true;
  }

  if (optionTokens.some((t) => t.name === 'help') || commandWord === 'help') return { kind: 'help', requested: true };
  if (commandWord === undefined) {
    if (optionTokens.length === 0) return { kind: 'help', requested: false };
    throw usageError('no command given');
  }
  if (!isCommandName(commandWord)) {
    throw usageError(`unknown command${/^[a-z][a-z-]{0,29}$/.test(commandWord) ? ` '${commandWord}'` : ''}`);
  }
  const specs: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...COMMAND_OPTIONS[commandWord] };
  const values = collect(optionTokens, specs, commandWord);
  if (extraPositional) {
    throw usageError(`${commandWord} takes no positional arguments: give every value with its option (see --help)`);
  }
  return { kind: 'run', global: globalOptions(values), command: command(commandWord, values) };
}

interface OptionToken {
  name: string;
  rawName: string;
  value?: string;
  inlineValue?: boolean;
}

function isCommandName(word: string): word is CommandName {
  return Object.hasOwn(COMMAND_OPTIONS, word);
}

/** An option's name as typed, or a neutral word when it does not look like an option name at all. */
function shown(token: OptionToken): string {
  return /^--?[A-Za-z][A-Za-z0-9-]{0,39}$/.test(token.rawName) ? token.rawName : 'option';
}

function collect(tokens: OptionToken[], specs: Record<string, OptionSpec>, commandName: CommandName): Values {
  const values: Values = new Map();
  for (const token of tokens) {
    // hasOwn: a name like --constructor must not find Object.prototype's member.
    const spec = Object.hasOwn(specs, token.name) ? specs[token.name] : undefined;
    if (spec === undefined) {
      const label = shown(token);
      if (Object.hasOwn(LEXER_OPTIONS, token.name)) throw usageError(`${commandName} does not take ${label}`);
      throw usageError(label === 'option' ? 'unknown option' : `unknown option ${label}`);
    }
    const name = `--${token.name}`;
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw usageError(`${name} takes no value`);
      values.set(token.name, true);
      continue;
    }
    // `--code --json` would otherwise take "--json" as the code.
    if (token.value === undefined || token.value === '' || (!token.inlineValue && token.value.startsWith('-'))) {
      throw usageError(`${name} needs a value (write ${name}=VALUE for a value that starts with -)`);
    }
    const previous = values.get(token.name);
    if (spec.multiple) {
      values.set(token.name, [...(Array.isArray(previous) ? previous : []), token.value]);
    } else if (previous !== undefined) {
      throw usageError(`${name} given more than once`);
    } else {
      values.set(token.name, token.value);
    }
  }
  return values;
}

function text(values: Values, name: string): string | undefined {
  const value = values.get(name);
  return typeof value === 'string' ? value : undefined;
}

function required(values: Values, name: string, commandName: CommandName): string {
  const value = text(values, name);
  if (value === undefined) throw usageError(`${commandName} needs --${name}`);
  return value;
}

function texts(values: Values, name: string): string[] {
  const value = values.get(name);
  return Array.isArray(value) ? value : [];
}

function globalOptions(values: Values): GlobalOptions {
  const address = text(values, 'address');
  if (address !== undefined) checkAddress(address, '--address');
  const timeout = text(values, 'timeout');
  let timeoutSeconds = DEFAULT_TIMEOUT_SECONDS;
  if (timeout !== undefined) {
    timeoutSeconds = Number(timeout);
    if (!/^\d+(\.\d+)?$/.test(timeout) || timeoutSeconds <= 0 || timeoutSeconds > 3600) {
      throw usageError('--timeout must be a number of seconds above 0 and at most 3600');
    }
  }
  return { address, json: values.get('json') === true, timeoutMs: Math.round(timeoutSeconds * 1000), credentials: credentialOptions(values) };
}

function credentialOptions(values: Values): CredentialOptions {
  const idTokenAudience = text(values, 'id-token-audience');
  const idTokenFile = text(values, 'id-token-file');
  if (idTokenAudience !== undefined && idTokenFile !== undefined) {
    throw usageError('give --id-token-audience or --id-token-file, not both');
  }
  const tlsCertFile = text(values, 'tls-cert');
  const tlsKeyFile = text(values, 'tls-key');
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) throw usageError('--tls-cert and --tls-key go together');
  const tlsCaFile = text(values, 'tls-ca');
  return {
    idTokenAudience,
    idTokenFile,
    tls: values.get('tls') === true || tlsCaFile !== undefined || tlsCertFile !== undefined,
    tlsCaFile,
    tlsCertFile,
    tlsKeyFile,
  };
}

/** Throws a usage error naming `what` unless `address` is HOST:PORT. */
export function checkAddress(address: string, what: string): string {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(address);
  if (match === null || Number(match[2]) > 65535) {
    throw usageError(`${what} must be HOST:PORT, e.g. 127.0.0.1:8080`);
  }
  return address;
}

function command(name: CommandName, values: Values): Command {
  switch (name) {
    case 'exchange':
      return { name, code: required(values, 'code', name), redirectUri: text(values, 'redirect-uri') ?? '' };
    case 'token': {
      const minTtl = text(values, 'min-ttl');
      if (minTtl !== undefined && !/^\d{1,7}$/.test(minTtl)) {
        throw usageError('--min-ttl must be a whole number of seconds');
      }
      return {
        name,
        userId: required(values, 'user', name),
        scopes: texts(values, 'scope'),
        minTtlSeconds: minTtl === undefined ? undefined : Number(minTtl),
      };
    }
    case 'profile':
    case 'status':
    case 'revoke':
      return { name, userId: required(values, 'user', name) };
    case 'health':
      return { name, service: text(values, 'service') ?? '' };
    case 'dev-signin': {
      const email = text(values, 'email');
      if (email !== undefined && !/^[^\s@]+@[^\s@]+$/.test(email)) throw usageError('--email must be an email address');
      const sub = text(values, 'sub');
      if (sub !== undefined && !/^[0-9]{1,255}$/.test(sub)) {
        throw usageError('--sub must be a Google account ID: 1 to 255 decimal digits');
      }
      return {
        name,
        email,
        displayName: text(values, 'name'),
        sub,
        scopes: texts(values, 'scope'),
        consent: values.get('consent') === true,
        oauthUrl: text(values, 'oauth-url'),
      };
    }
  }
}
