import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * A small reader of Dockerfiles and .dockerignore files, enough to check the
 * project's image without a Docker engine: instructions with `\` line
 * continuations and comments, stages (`FROM ... AS name`), COPY with its
 * flags (`--from=`), exec and shell forms, ENV pairs, and the build
 * context's ignore rules as Docker applies them.
 */

/** One instruction, its continuation lines joined. */
export interface Instruction {
  /** Upper case: FROM, COPY, RUN, ... */
  keyword: string;
  /** Everything after the keyword, trimmed. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
  /** The absolute WORKDIR in effect for it. */
  workdir: string;
}

/** A COPY (or ADD) instruction, parsed. */
export interface Copy {
  /** The stage it copies from (`--from=`); undefined for the build context. */
  from?: string;
  flags: Record<string, string | true>;
  sources: string[];
  /** The destination as written. */
  dest: string;
  /** The destination resolved against the WORKDIR in effect. */
  absoluteDest: string;
  workdir: string;
  line: number;
}

/** One build stage: a FROM and the instructions up to the next FROM. */
export interface Stage {
  index: number;
  /** The `AS` name, lower case, if any. */
  name?: string;
  /** The base image (ARG values substituted), or an earlier stage's name. */
  image: string;
  /** The earlier stage this one starts from, if it does. */
  baseStage?: Stage;
  line: number;
  instructions: Instruction[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

const JSON_ARRAY = /^\[.*\]$/s;

/** Joins continuation lines and drops comments, as Docker's parser does. */
function logicalLines(text: string): Array<{ text: string; line: number }> {
  const out: Array<{ text: string; line: number }> = [];
  let current: { text: string; line: number } | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    // Comment lines are removed, even inside a continued instruction.
    if (trimmed.startsWith('#')) return;
    if (!current && trimmed === '') return;
    const continues = /\\\s*$/.test(raw);
    const body = continues ? raw.replace(/\\\s*$/, '') : raw;
    if (current) current.text += body;
    else current = { text: body, line: i + 1 };
    if (!continues) {
      out.push({ text: current.text.trim(), line: current.line });
      current = undefined;
    }
  });
  if (current) out.push({ text: current.text.trim(), line: current.line });
  return out;
}

/** Replaces `$NAME` and `${NAME}` (and `${NAME:-default}`) from `vars`. */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_match, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const value = vars[name];
    return value !== undefined && value !== '' ? value : (fallback ?? '');
  });
}

/** Parses a Dockerfile's text. */
export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  let workdir = '/';
  for (const { text: lineText, line } of logicalLines(text)) {
    const match = /^([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(lineText);
    if (!match) throw new Error(`Dockerfile line ${line}: cannot read "${lineText}"`);
    const keyword = (match[1] ?? '').toUpperCase();
    const args = (match[2] ?? '').trim();
    if (keyword === 'FROM') {
      const words = args.split(/\s+/).filter((word) => !word.startsWith('--'));
      const image = substitute(words[0] ?? '', globalArgs);
      const name = words.length >= 3 && words[1]?.toUpperCase() === 'AS' ? words[2]?.toLowerCase() : undefined;
      const baseStage = stages.find((stage) => stage.name !== undefined && stage.name === image.toLowerCase());
      workdir = baseStage ? (baseStage.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)?.workdir ?? '/') : '/';
      stages.push({ index: stages.length, ...(name !== undefined && { name }), image, ...(baseStage && { baseStage }), line, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (keyword !== 'ARG') throw new Error(`Dockerfile line ${line}: ${keyword} before the first FROM`);
      const [argName, value] = args.split('=', 2);
      if (argName) globalArgs[argName] = value ?? '';
      continue;
    }
    if (keyword === 'WORKDIR') workdir = path.posix.resolve(workdir, args);
    stage.instructions.push({ keyword, args, line, workdir });
  }
  return { globalArgs, stages };
}

/** The stage's instructions with `keyword`. */
export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword.toUpperCase());
}

/** The exec form's words, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!JSON_ARRAY.test(args)) return undefined;
  try {
    const value: unknown = JSON.parse(args);
    return Array.isArray(value) && value.every((word) => typeof word === 'string') ? (value as string[]) : undefined;
  } catch {
    return undefined;
  }
}

/** The stage's COPY and ADD instructions, parsed. */
export function copiesOf(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const flags: Record<string, string | true> = {};
      let rest = i.args;
      for (let flag = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest); flag; flag = /^--([a-z-]+)(?:=(\S*))?\s+/.exec(rest)) {
        flags[flag[1] ?? ''] = flag[2] ?? true;
        rest = rest.slice(flag[0].length);
      }
      const words = execForm(rest) ?? rest.split(/\s+/).filter(Boolean);
      if (words.length < 2) throw new Error(`Dockerfile line ${i.line}: ${i.keyword} needs a source and a destination`);
      const dest = words.at(-1) ?? '';
      const from = typeof flags.from === 'string' ? flags.from.toLowerCase() : undefined;
      return {
        ...(from !== undefined && { from }),
        flags,
        sources: words.slice(0, -1),
        dest,
        absoluteDest: path.posix.resolve(i.workdir, dest) + (dest.endsWith('/') ? '/' : ''),
        workdir: i.workdir,
        line: i.line,
      };
    });
}

/** The stage's environment: its own ENV pairs over those of the stage it starts from. */
export function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = stage.baseStage ? envOf(stage.baseStage) : {};
  for (const { args } of instructionsOf(stage, 'ENV')) {
    if (!args.includes('=')) {
      const [name, ...value] = args.split(/\s+/);
      if (name) env[name] = value.join(' ');
      continue;
    }
    for (const pair of args.match(/[A-Za-z_][A-Za-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g) ?? []) {
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      env[pair.slice(0, eq)] = /^(["']).*\1$/s.test(value) ? value.slice(1, -1) : value;
    }
  }
  return env;
}

/** The last value of a single-valued instruction (USER, CMD, ENTRYPOINT, ...) in the stage or the stages it starts from. */
export function lastOf(stage: Stage, keyword: string): Instruction | undefined {
  return instructionsOf(stage, keyword).at(-1) ?? (stage.baseStage ? lastOf(stage.baseStage, keyword) : undefined);
}

// ----- .dockerignore -----

/** One .dockerignore rule. */
interface IgnoreRule {
  pattern: string;
  exclusion: boolean;
  regex: RegExp;
}

/** Turns a Docker (Go filepath.Match plus `**`) pattern into an anchored regular expression. */
export function patternToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          out += '(?:.*/)?';
        } else {
          out += '.*';
        }
      } else {
        out += '[^/]*';
      }
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '\\' && i + 1 < pattern.length) {
      out += `\\${pattern[++i] ?? ''}`;
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) {
        out += '\\[';
      } else {
        out += `[${pattern.slice(i + 1, end).replace(/^\^|^!/, '^')}]`;
        i = end;
      }
    } else {
      out += c.replace(/[.+^${}()|/\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}

/** The build context's ignore rules, read from a .dockerignore text. */
export class DockerIgnore {
  private readonly rules: IgnoreRule[];

  constructor(text: string) {
    this.rules = text
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => {
        const exclusion = line.startsWith('!');
        let pattern = path.posix.normalize((exclusion ? line.slice(1) : line).trim());
        if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
        pattern = pattern.replace(/\/+$/, '');
        return { pattern, exclusion, regex: patternToRegex(pattern) };
      });
  }

  /**
   * Whether the context path `rel` (relative, `/`-separated) is left out of
   * the build context: the last rule matching it, or one of its parent
   * folders, decides.
   */
  ignores(rel: string): boolean {
    const clean = path.posix.normalize(rel).replace(/^\.\/|\/+$/g, '');
    const parents = clean.split('/');
    let ignored = false;
    for (const rule of this.rules) {
      let matched = rule.regex.test(clean);
      for (let i = 1; !matched && i < parents.length; i++) matched = rule.regex.test(parents.slice(0, i).join('/'));
      if (matched) ignored = !rule.exclusion;
    }
    return ignored;
  }
}

// ----- files -----

/** Every file under `dir` (recursively), as paths relative to `dir`; `skip` prunes folders by relative path. */
export function listFiles(dir: string, skip: (rel: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!skip(child)) walk(child);
      } else {
        out.push(child);
      }
    }
  };
  walk('');
  return out;
}

/** The context entries a COPY source names (wildcards expanded in its last segment only), relative to the context. */
export function expandContextSource(context: string, source: string): string[] {
  const rel = path.posix.normalize(source).replace(/^\/+|\/+$/g, '') || '.';
  const base = path.posix.basename(rel);
  if (!/[*?[]/.test(base)) return existsSync(path.join(context, rel)) ? [rel] : [];
  const dir = path.posix.dirname(rel);
  if (!existsSync(path.join(context, dir))) return [];
  const regex = patternToRegex(base);
  return readdirSync(path.join(context, dir))
    .filter((name) => regex.test(name))
    .map((name) => (dir === '.' ? name : `${dir}/${name}`));
}

/**
 * Copies `src` (a file or folder) to `dest` as COPY does: a folder's
 * contents go into `dest`; a file goes into `dest` when it ends with `/` or
 * names a folder, else becomes `dest`. `keep` filters files by their path
 * relative to `src`'s parent (the build context's ignore rules).
 */
export function copyLikeDocker(src: string, dest: string, keep: (relToSrc: string) => boolean = () => true): void {
  if (lstatSync(src).isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const rel of listFiles(src)) {
      if (!keep(rel)) continue;
      mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
      cpSync(path.join(src, rel), path.join(dest, rel), { verbatimSymlinks: true });
    }
    return;
  }
  const target = dest.endsWith('/') || (existsSync(dest) && statSync(dest).isDirectory()) ? path.join(dest, path.basename(src)) : dest;
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(src, target);
}

/** Turns the write bits of everything under `dir` (itself included) off, or back on for the owner; symbolic links are left alone. */
export function setWritable(dir: string, writable: boolean): void {
  const apply = (p: string) => {
    const mode = lstatSync(p).mode & 0o7777;
    chmodSync(p, writable ? mode | 0o200 : mode & ~0o222);
  };
  const walk = (p: string) => {
    apply(p);
    for (const entry of readdirSync(p, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(path.join(p, entry.name));
      else if (entry.isFile()) apply(path.join(p, entry.name));
    }
  };
  walk(dir);
}

/** A fingerprint of every file under `dir`: path, size and modification time. */
export function snapshot(dir: string): Map<string, string> {
  return new Map(
    listFiles(dir).map((rel) => {
      const st = lstatSync(path.join(dir, rel));
      return [rel, `${st.size}:${st.mtimeMs}`];
    }),
  );
}
