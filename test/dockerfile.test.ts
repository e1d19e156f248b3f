import { expect } from 'chai';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { checkHealth } from '../src/client/health-client';
import { LocalOAuthServer } from '../src/local/oauth-server';
import {
  copiesOf,
  copyLikeDocker,
  DockerIgnore,
  envOf,
  execForm,
  expandContextSource,
  instructionsOf,
  lastOf,
  listFiles,
  parseDockerfile,
  setWritable,
  snapshot,
  type Copy,
  type Dockerfile,
  type Instruction,
  type Stage,
} from './support/dockerfile';
import { brokerProcessEnv } from './support/broker-process-env';
import { capturedLogLines, issuedSecrets } from './support/log-capture';
import { runCommand, SpawnedProcess } from './support/processes';

// There is no Docker engine on the developers' machines or CI: this suite
// checks the Dockerfile as written, then reproduces its stages in temporary
// folders (the build stage's `npm run build`, the final stage's production
// install) and starts the final stage's CMD from there against the loopback
// stack, as the container would start.

const ROOT = path.resolve(__dirname, '..');
const STEP_TIMEOUT_MS = 180_000;

/** The uid of the node user of the official node images. */
const NAMED_USERS: Record<string, number> = { node: 1000 };
/** Context paths that must never reach the final image. */
const NOT_IN_IMAGE = new Set(['src', 'test', 'bench', '.dev', '.git', '.ci', 'k8s', 'tsconfig.json', 'tsconfig.test.json', 'eslint.config.mjs']);

interface PackageJson {
  engines?: { node?: string };
  scripts?: Record<string, string>;
  devDependencies?: Record<string, string>;
}
const packageJson = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** The stage a `--from=` names: by name or by index. */
function stageNamed(dockerfile: Dockerfile, from: string): Stage | undefined {
  return /^\d+$/.test(from) ? dockerfile.stages[Number(from)] : dockerfile.stages.find((stage) => stage.name === from);
}

/** The single WORKDIR a stage works in (the suite maps it to a folder). */
function workdirOf(stage: Stage): string {
  return lastOf(stage, 'WORKDIR')?.workdir ?? '/';
}

/** The `&&`-joined commands of a RUN. */
function commandsOf(run: Instruction): string[] {
  return (execForm(run.args)?.join(' ') ?? run.args)
    .split(/\s*&&\s*/)
    .map((command) => command.trim().replace(/\s+/g, ' '))
    .filter(Boolean);
}

/** Whether the stage installs production dependencies only: `npm ci --omit=dev` and no other install. */
function installsProductionOnly(stage: Stage): boolean {
  const commands = instructionsOf(stage, 'RUN').flatMap(commandsOf);
  const installs = commands.filter((c) => /^npm (ci|install|i|add)\b/.test(c));
  return installs.length > 0 && installs.every((c) => /^npm ci\b/.test(c) && c.split(' ').includes('--omit=dev'));
}

/** A COPY source as a path relative to the context, or to the WORKDIR of the stage it copies from. */
function relativeSource(dockerfile: Dockerfile, copy: Copy, source: string): string {
  if (copy.from === undefined) return path.posix.normalize(source).replace(/^\/+|\/+$/g, '') || '.';
  const from = stageNamed(dockerfile, copy.from);
  return path.posix.relative(from ? workdirOf(from) : '/', path.posix.resolve(from ? workdirOf(from) : '/', source)) || '.';
}

describe('Dockerfile (checked and reproduced without a Docker engine)', () => {
  let dockerfile: Dockerfile;
  let ignore: DockerIgnore;
  let final: Stage;

  before(() => {
    dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
    ignore = new DockerIgnore(readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    const last = dockerfile.stages.at(-1);
    if (!last) throw new Error('the Dockerfile has no FROM');
    final = last;
  });

  describe('as written', () => {
    it('has a build stage and a final stage, every FROM an earlier stage or an image pinned by exact version', () => {
      expect(dockerfile.stages.length, 'stages').to.be.at.least(2);
      const unpinned = dockerfile.stages
        .filter((stage) => !stage.baseStage)
        .filter((stage) => {
          const tag = /^[^@]+?:([^:/@]+)(?:@sha256:[0-9a-f]{64})?$/.exec(stage.image)?.[1];
          return tag === undefined || !/^v?\d+\.\d+\.\d+(?:-[A-Za-z0-9._-]+)?$/.test(tag);
        })
        .map((stage) => `line ${stage.line}: ${stage.image}`);
      expect(unpinned, 'FROM without an exact version tag (not latest, not a bare major or minor)').to.deep.equal([]);
    });

    it('builds and runs on one Node.js release, one that package.json engines allow', () => {
      const versions = new Set(
        dockerfile.stages.filter((stage) => !stage.baseStage && /^(?:docker\.io\/)?(?:library\/)?node:/.test(stage.image)).map((stage) => /:v?(\d+\.\d+\.\d+)/.exec(stage.image)?.[1]),
      );
      expect([...versions], 'Node.js versions of the stages').to.have.length(1);
      const [major, minor] = ([...versions][0] ?? '0.0.0').split('.').map(Number);
      const [, minMajor, minMinor] = /^>=\s*(\d+)\.(\d+)/.exec(packageJson.engines?.node ?? '') ?? [];
      expect(minMajor, 'package.json engines.node as >=MAJOR.MINOR').to.be.a('string');
      expect((major ?? 0) * 1000 + (minor ?? 0)).to.be.at.least(Number(minMajor) * 1000 + Number(minMinor));
    });

    it('runs the final stage as a non-root user: the uid the Kubernetes manifests run as', () => {
      const user = lastOf(final, 'USER')?.args;
      expect(user, 'USER in the final stage').to.be.a('string');
      const [name = '', group] = (user ?? '').split(':');
      expect(name, 'user').to.not.be.oneOf(['root', '0', '']);
      expect(group ?? 'unset', 'group').to.not.be.oneOf(['root', '0']);
      const uid = /^\d+$/.test(name) ? Number(name) : NAMED_USERS[name];
      expect(uid, `uid of "${name}" (use a number, or a user of the base image listed in NAMED_USERS)`).to.be.a('number');
      const deployment = parseYaml(readFileSync(path.join(ROOT, 'k8s/base/deployment.yaml'), 'utf8')) as {
        spec: { template: { spec: { securityContext?: { runAsUser?: number }; containers: Array<{ securityContext?: { runAsUser?: number } }> } } };
      };
      const pod = deployment.spec.template.spec;
      const runAsUser = pod.containers[0]?.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
      expect(uid, 'k8s/base/deployment.yaml runAsUser').to.equal(runAsUser);
    });

    it('starts node itself (PID 1, gets SIGTERM) with an exec-form CMD that arguments replace, the package start script', () => {
      const cmd = lastOf(final, 'CMD');
      expect(cmd, 'CMD in the final stage').to.not.equal(undefined);
      const words = execForm(cmd?.args ?? '');
      expect(words, `CMD in exec form, not "${cmd?.args ?? ''}"`).to.be.an('array');
      expect(words?.[0]).to.equal('node');
      expect(words?.join(' ')).to.equal(packageJson.scripts?.start);
      // The base image's ENTRYPOINT (a shell wrapper) may only be cleared, never replaced: `docker run IMAGE node dist/main.js CMD` must work.
      const entrypoint = lastOf(final, 'ENTRYPOINT');
      if (entrypoint) expect(execForm(entrypoint.args), `ENTRYPOINT ${entrypoint.args}`).to.deep.equal([]);
    });

    it('sets NODE_ENV=production, exposes 8080 and has no HEALTHCHECK (the probes check health)', () => {
      expect(envOf(final).NODE_ENV).to.equal('production');
      expect(instructionsOf(final, 'EXPOSE').flatMap((i) => i.args.split(/\s+/))).to.include('8080');
      expect(dockerfile.stages.flatMap((stage) => instructionsOf(stage, 'HEALTHCHECK')).map((i) => `line ${i.line}`)).to.deep.equal([]);
    });

    it('installs production dependencies only in the final stage', () => {
      const viaStage = copiesOf(final)
        .filter((copy) => copy.from !== undefined && copy.sources.some((s) => /(^|\/)node_modules\/?$/.test(s)))
        .map((copy) => stageNamed(dockerfile, copy.from ?? ''));
      const ok = viaStage.length > 0 ? viaStage.every((stage) => stage !== undefined && installsProductionOnly(stage)) : installsProductionOnly(final);
      expect(ok, 'the final stage runs `npm ci --omit=dev` (or copies node_modules from a stage that does) and installs nothing else').to.equal(true);
    });

    it('copies no sources, tests, benchmarks, dev configuration or source maps into the final stage', () => {
      const bad = copiesOf(final).flatMap((copy) => {
        if (copy.from !== undefined && !stageNamed(dockerfile, copy.from)) return [`line ${copy.line}: --from=${copy.from} is no stage`];
        return copy.sources
          .map((source) => ({ source, rel: relativeSource(dockerfile, copy, source) }))
          .filter(({ rel }) => rel === '.' || rel.endsWith('.map') || NOT_IN_IMAGE.has(rel.split('/')[0] ?? '') || (copy.from === undefined && rel.split('/')[0] === 'node_modules'))
          .map(({ source }) => `line ${copy.line}: ${copy.from ? `--from=${copy.from} ` : ''}${source}`);
      });
      expect(bad).to.deep.equal([]);
    });

    it('copies from the build context only what the repository has and .dockerignore lets in', () => {
      const problems = dockerfile.stages.flatMap((stage) =>
        copiesOf(stage)
          .filter((copy) => copy.from === undefined)
          .flatMap((copy) =>
            copy.sources.flatMap((source) => {
              const entries = expandContextSource(ROOT, source);
              if (entries.length === 0) return [`line ${copy.line}: ${source} does not exist`];
              return entries.flatMap((entry) => {
                if (ignore.ignores(entry)) return [`line ${copy.line}: ${entry} is left out by .dockerignore`];
                if (!lstatSync(path.join(ROOT, entry)).isDirectory()) return [];
                const kept = listFiles(path.join(ROOT, entry)).filter((rel) => !ignore.ignores(`${entry}/${rel}`));
                return kept.length > 0 ? [] : [`line ${copy.line}: .dockerignore leaves nothing of ${entry}`];
              });
            }),
          ),
      );
      expect(problems).to.deep.equal([]);
    });

    it('.dockerignore keeps secrets, dependencies, build output, tests and benchmarks out of the context', () => {
      const mustStayOut = ['.dev/stack.json', '.dev/client_secret.json', '.git/config', 'node_modules/pino/package.json', 'dist/main.js', 'src/gen/x.ts', 'test/dockerfile.test.ts', 'bench/x.ts', '.env', 'npm-debug.log', 'dist/main.js.map'];
      expect(mustStayOut.filter((rel) => !ignore.ignores(rel)), 'let into the build context').to.deep.equal([]);
    });
  });

  describe('reproduced in temporary folders', function () {
    this.timeout(60_000);
    let work: string;
    let appDir: string;
    /** What the final stage's COPYs could not find. */
    const missing: string[] = [];
    /** Files of the final folder that came from the build context (the image keeps their modes). */
    const fromContext: string[] = [];
    let google: LocalOAuthServer;
    let serviceEnv: Record<string, string>;

    /** A path of a stage's container file system in the folder that stands for the stage's WORKDIR. */
    function local(stage: Stage, folder: string, containerPath: string): string {
      const rel = path.posix.relative(workdirOf(stage), containerPath);
      if (rel.startsWith('..')) throw new Error(`${containerPath} is outside the WORKDIR ${workdirOf(stage)} of stage ${stage.name ?? stage.index}; the suite reproduces one WORKDIR per stage`);
      return path.join(folder, rel) + (containerPath.endsWith('/') ? '/' : '');
    }

    /** Runs what a RUN does, as far as the suite knows how; anything else fails, naming the command. */
    async function reproduceRun(stage: Stage, folder: string, run: Instruction, timings: string[]): Promise<void> {
      for (const command of commandsOf(run)) {
        const words = command.split(' ');
        if (/^npm ci\b/.test(command) && words.includes('--omit=dev')) {
          const result = await runCommand('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
            cwd: folder,
            env: { ...process.env, ...envOf(stage) },
            timeoutMs: STEP_TIMEOUT_MS,
          });
          timings.push(`npm ci --omit=dev ${(result.ms / 1000).toFixed(1)} s`);
        } else if (/^npm ci\b/.test(command)) {
          // The full install of the build stage: the repository's own (npm ci on CI) stands for it.
          symlinkSync(path.join(ROOT, 'node_modules'), path.join(folder, 'node_modules'), 'dir');
        } else if (command === 'npm run build') {
          const result = await runCommand('npm', ['run', 'build'], { cwd: folder, timeoutMs: STEP_TIMEOUT_MS });
          timings.push(`npm run build ${(result.ms / 1000).toFixed(1)} s`);
        } else if (command === "find node_modules -name '*.map' -type f -delete") {
          await runCommand('find', ['node_modules', '-name', '*.map', '-type', 'f', '-delete'], { cwd: folder, timeoutMs: 30_000 });
        } else if (/^npm cache clean\b/.test(command)) {
          // npm's cache, outside the WORKDIR.
        } else if (/^rm -rf( \/\S+)+$/.test(command) && words.slice(2).every((p) => path.posix.relative(workdirOf(stage), p).startsWith('..'))) {
          // Removes files of the base image (package managers), outside the WORKDIR.
        } else {
          throw new Error(`Dockerfile line ${run.line}: the suite cannot reproduce "${command}"; teach reproduceRun in test/dockerfile.test.ts`);
        }
      }
    }

    /** Reproduces a stage's COPY and RUN instructions, in order, in `folder`. */
    async function reproduceStage(stage: Stage, folder: string, folders: Map<Stage, string>, timings: string[]): Promise<void> {
      mkdirSync(folder, { recursive: true });
      folders.set(stage, folder);
      for (const instruction of stage.instructions) {
        if (instruction.keyword === 'RUN') {
          await reproduceRun(stage, folder, instruction, timings);
          continue;
        }
        if (instruction.keyword !== 'COPY' && instruction.keyword !== 'ADD') continue;
        const copy = copiesOf(stage).find((c) => c.line === instruction.line);
        if (!copy) continue;
        const intoFolder = copy.sources.length > 1 || copy.dest.endsWith('/');
        const dest = local(stage, folder, copy.absoluteDest + (intoFolder && !copy.absoluteDest.endsWith('/') ? '/' : ''));
        for (const source of copy.sources) {
          if (copy.from !== undefined) {
            const from = stageNamed(dockerfile, copy.from);
            const fromFolder = from && folders.get(from);
            const src = from && fromFolder ? local(from, fromFolder, path.posix.resolve(workdirOf(from), source)) : undefined;
            if (!src || !existsSync(src)) {
              if (stage === final) missing.push(`line ${copy.line}: --from=${copy.from} ${source}`);
              continue;
            }
            copyLikeDocker(src, dest);
            continue;
          }
          const entries = expandContextSource(ROOT, source).filter((entry) => !ignore.ignores(entry));
          if (entries.length === 0 && stage === final) missing.push(`line ${copy.line}: ${source}`);
          for (const entry of entries) {
            const before = new Set(listFiles(folder, (rel) => rel === 'node_modules'));
            copyLikeDocker(path.join(ROOT, entry), dest, (rel) => !ignore.ignores(`${entry}/${rel}`));
            if (stage === final) fromContext.push(...listFiles(folder, (rel) => rel === 'node_modules').filter((rel) => !before.has(rel)));
          }
        }
      }
    }

    before(async function () {
      this.timeout(2 * STEP_TIMEOUT_MS + 30_000);
      const started = Date.now();
      work = mkdtempSync(path.join(tmpdir(), 'tokenbroker-image-'));
      const folders = new Map<Stage, string>();
      const timings: string[] = [];
      for (const stage of dockerfile.stages) {
        const folder = path.join(work, `stage-${stage.index}-${stage.name ?? 'unnamed'}`);
        if (stage.baseStage) throw new Error(`stage ${stage.name ?? stage.index} starts FROM another stage; the suite does not reproduce that`);
        await reproduceStage(stage, folder, folders, timings);
      }
      appDir = folders.get(final) ?? '';
      console.log(`      (reproduced the image's stages in ${((Date.now() - started) / 1000).toFixed(1)} s: ${timings.join(', ')})`);

      const child = await brokerProcessEnv(path.join(work, 'secrets'), 'image');
      google = child.google;
      serviceEnv = { ...child.env, TOKENBROKER_SHUTDOWN_GRACE_MS: '1000' };
    });

    after(async () => {
      if (google) {
        for (const secret of google.issuedSecrets()) issuedSecrets.add(secret);
        await google.close();
      }
      if (work) {
        setWritable(work, true);
        rmSync(work, { recursive: true, force: true });
      }
    });

    /** The environment the container gives its command: the image's ENV, then the deployment's settings; HOME and TMPDIR empty folders. */
    function containerEnv(home: string): Record<string, string> {
      return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, TMPDIR: path.join(home, 'tmp'), ...envOf(final), ...serviceEnv };
    }

    /** Starts the final stage's command (plus `extraArgs`) in its folder, as the container would. */
    function startCommand(words: string[], home: string): SpawnedProcess {
      const [command = '', ...args] = words;
      return SpawnedProcess.spawn(command === 'node' ? process.execPath : command, args, { cwd: appDir, env: containerEnv(home) });
    }

    function emptyHome(name: string): string {
      const home = path.join(work, name);
      mkdirSync(path.join(home, 'tmp'), { recursive: true });
      setWritable(home, false);
      return home;
    }

    it('finds every file the final stage copies once the build stage has run `npm run build`', () => {
      expect(missing).to.deep.equal([]);
      const cmd = execForm(lastOf(final, 'CMD')?.args ?? '') ?? [];
      expect(existsSync(path.join(appDir, cmd[1] ?? 'dist/main.js')), `${cmd[1] ?? ''} in the final folder`).to.equal(true);
      expect(existsSync(path.join(appDir, 'proto/tokenbroker/v1/token_broker.proto')), 'proto/ for server reflection').to.equal(true);
    });

    it('installs no devDependencies, no TypeScript sources and no source maps', () => {
      const lock = JSON.parse(readFileSync(path.join(appDir, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
      const devPackages = Object.entries(lock.packages)
        .filter(([key, entry]) => key !== '' && entry.dev === true)
        .map(([key]) => key);
      expect(devPackages.length, 'dev packages in the lock file').to.be.greaterThan(0);
      expect(devPackages.filter((key) => existsSync(path.join(appDir, key))), 'dev packages installed').to.deep.equal([]);
      for (const name of ['typescript', 'mocha', 'tsx', 'eslint', ...Object.keys(packageJson.devDependencies ?? {}).filter((n) => !n.startsWith('@types/'))]) {
        expect(existsSync(path.join(appDir, 'node_modules', name)), `node_modules/${name}`).to.equal(false);
      }
      expect(existsSync(path.join(appDir, 'node_modules/@grpc/grpc-js')), 'production dependencies installed').to.equal(true);
      const files = listFiles(appDir);
      expect(files.filter((rel) => rel.endsWith('.map')), 'source maps').to.deep.equal([]);
      expect(files.filter((rel) => !rel.startsWith('node_modules/') && /\.ts$/.test(rel)), 'TypeScript files').to.deep.equal([]);
    });

    it('keeps every file from the build context readable by the unprivileged user (COPY keeps modes, root owns the files)', () => {
      expect(fromContext.length).to.be.greaterThan(0);
      const unreadable = fromContext.filter((rel) => (lstatSync(path.join(appDir, rel)).mode & 0o004) === 0);
      expect(unreadable).to.deep.equal([]);
    });

    it('serves SERVING from the production install, on a read-only file system, and exits 0 on SIGTERM', async function () {
      this.timeout(90_000);
      setWritable(appDir, false);
      const home = emptyHome('home-serve');
      const before = snapshot(appDir);
      const broker = startCommand(execForm(lastOf(final, 'CMD')?.args ?? '') ?? [], home);
      try {
        const port = await broker.startedPort(45_000);
        expect(await checkHealth(`127.0.0.1:${port}`, '', { timeoutMs: 5_000 })).to.equal('SERVING');
        expect(broker.child.kill('SIGTERM')).to.equal(true);
        const exit = await broker.exit(20_000);
        expect(exit.code, broker.output.slice(-2000)).to.equal(0);
        expect(broker.logLines().some((line) => line.includes('"event":"stopped"'))).to.equal(true);
      } finally {
        broker.kill();
        capturedLogLines.push(...broker.logLines());
      }
      expect(snapshot(appDir), 'files written into the app folder').to.deep.equal(before);
      expect(listFiles(home), 'files written into HOME or TMPDIR').to.deep.equal([]);
    });

    it('runs another command of the same image given as arguments: node dist/main.js rotate-keys', async function () {
      this.timeout(60_000);
      const home = emptyHome('home-job');
      const job = startCommand([...(execForm(lastOf(final, 'CMD')?.args ?? '') ?? []), 'rotate-keys'], home);
      try {
        const exit = await job.exit(45_000);
        expect(exit.code, job.output.slice(-2000)).to.equal(0);
        expect(job.output).to.include('"job":"rotate-keys"');
      } finally {
        job.kill();
        capturedLogLines.push(...job.logLines());
      }
    });
  });
});
