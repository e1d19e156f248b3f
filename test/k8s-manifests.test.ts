import { Service as KnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { expect } from 'chai';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Container, type IContainer } from 'kubernetes-models/v1/Container';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CallerPolicy, POLICY_RPCS } from '../src/auth/caller-policy';
import { type CallerAuthConfig, type Config, ConfigError, loadConfig } from '../src/config/config';
import type { AuthorizationPolicy, PeerAuthentication } from './support/istio-security';
import { isRecord, type ManifestObject, parseManifests, renderKustomization } from './support/kustomize';
import { cloudRunJobsOf, fieldsTheSchemaIgnores, instancesOf, istioObjectsOf, manifestProblems, type ModelClass, nameOf } from './support/manifest-schema';

const ROOT = path.resolve(__dirname, '..');
const K8S_DIR = path.join(ROOT, 'k8s');
const OVERLAYS_DIR = path.join(K8S_DIR, 'overlays');
const CLOUD_RUN_SERVICE = path.join(K8S_DIR, 'cloud-run', 'service.yaml');
const CLOUD_RUN_JOBS_DIR = path.join(K8S_DIR, 'cloud-run', 'jobs');

/**
 * The jobs of src/main.ts (every command besides serving) and how often
 * each runs, in seconds, or 'on demand': started by hand.
 */
const JOBS: Readonly<Record<string, number | 'on demand'>> = {
  'keep-alive': 86_400,
  'retry-revocations': 3_600,
  'rotate-keys': 'on demand',
};

/**
 * What the Secret Manager secrets Cloud Run mounts hold: the file each is
 * created from (k8s/README.md), relative to the repository root.
 */
const CLOUD_RUN_SECRET_FILES: Readonly<Record<string, string>> = {
  'tokenbroker-policy': 'k8s/cloud-run/policy.yaml',
};

/** What each overlay under k8s/overlays must provide. Every overlay must be listed. */
const OVERLAYS: Readonly<Record<string, { minReplicas: number; mesh: boolean }>> = {
  'gke-istio': { minReplicas: 2, mesh: true },
  dev: { minReplicas: 1, mesh: false },
};

/** The placeholders operators replace (k8s/README.md), with values the service accepts. */
const PLACEHOLDERS: Readonly<Record<string, string>> = {
  PROJECT_ID: 'example-project',
  REGION: 'europe-west1',
  REPOSITORY: 'services',
  IMAGE_TAG: '1.0.0',
  APP_CLIENT_ID: '1234-abcd',
  PROJECT_NUMBER: '123456789012',
  CALLER_AUDIENCE: 'https://tokenbroker.internal',
};

/** A Google service account's email: the caller identity a Google ID token proves. */
const SERVICE_ACCOUNT_EMAIL = /^[a-z][a-z0-9-]*@[A-Za-z0-9_-]+\.iam\.gserviceaccount\.com$/;

/**
 * After the grace period the server waits this long for the UNAVAILABLE
 * answers to flush before closing connections (shutdown() in
 * src/transport/grpc-server.ts); then the Firestore client closes, bounded
 * by TOKENBROKER_STORE_TIMEOUT_MS (src/app.ts).
 */
const ANSWER_FLUSH_MS = 500;

/** Cloud Run sends SIGKILL this long after SIGTERM. */
const CLOUD_RUN_SHUTDOWN_MS = 10_000;

/** Settings only local development uses; a deployment must not set them. */
const LOCAL_ONLY_SETTINGS = ['FIRESTORE_EMULATOR_HOST', 'TOKENBROKER_SECRET_MANAGER_ENDPOINT'];

/** The setting names of the top-level README's configuration table. */
function documentedSettings(): Set<string> {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((part) => part.startsWith('Configuration'));
  const names = [...(section ?? '').matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1]);
  // Guards against a reformatted README silently allowing nothing or anything.
  expect(names, 'settings parsed from the README configuration table').to.include.members(['PORT', 'GOOGLE_CLOUD_PROJECT', 'TOKENBROKER_SHUTDOWN_GRACE_MS']);
  return new Set(names);
}

/** gRPC paths of the API's methods, read from its proto. */
function apiMethodPaths(): string[] {
  const proto = readFileSync(path.join(ROOT, 'proto', 'tokenbroker', 'v1', 'token_broker.proto'), 'utf8');
  const pkg = /^package\s+([\w.]+);/m.exec(proto)?.[1];
  const service = /^service\s+(\w+)\s*\{/m.exec(proto)?.[1];
  const methods = [...proto.matchAll(/^\s*rpc\s+(\w+)\s*\(/gm)].map((match) => match[1]);
  expect(methods, 'rpc names parsed from the proto').to.have.length.above(0);
  return methods.map((method) => `/${pkg}.${service}/${method}`);
}

const HEALTH_PATHS = ['/grpc.health.v1.Health/Check', '/grpc.health.v1.Health/Watch'];

/**
 * The job commands and their flags, read from the usage text of
 * src/main.ts: command -> flag -> the kind of value (`N` or `USER_ID`).
 */
function jobCommands(): Map<string, Map<string, string>> {
  const main = readFileSync(path.join(ROOT, 'src', 'main.ts'), 'utf8');
  const usage = present(/const USAGE = `([^`]*)`/.exec(main)?.[1], 'USAGE in src/main.ts');
  const commands = new Map(
    [...usage.matchAll(/node dist\/main\.js ([a-z][a-z-]*)((?: \[--[a-z-]+ [A-Z_]+\])*)/g)].map(
      (match) => [match[1], new Map([...match[2].matchAll(/\[(--[a-z-]+) ([A-Z_]+)\]/g)].map((flag) => [flag[1], flag[2]]))] as const,
    ),
  );
  // Guards against a reworded usage text silently allowing nothing, and against a new job without a deployment.
  expect([...commands.keys()].sort(), 'job commands in the usage text of src/main.ts').to.deep.equal(Object.keys(JOBS).sort());
  return commands;
}

/**
 * The job a container runs, `node dist/main.js JOB [--flag value]...`
 * split over command and args in any way, after checking the job and its
 * flags against the usage text of src/main.ts.
 */
function jobOf(container: IContainer, what: string): string {
  const argv = [...(container.command ?? []), ...(container.args ?? [])];
  expect(argv.slice(0, 2), `${what}: command line`).to.deep.equal(['node', 'dist/main.js']);
  const [job, ...flags] = argv.slice(2);
  const known = present(jobCommands().get(present(job, `${what}: job command`)), `${what}: job command "${job}" in the usage text of src/main.ts`);
  expect(flags.length % 2, `${what}: every flag with a value`).to.equal(0);
  for (let i = 0; i < flags.length; i += 2) {
    const kind = present(known.get(flags[i]), `${what}: flag ${flags[i]} of ${job}`);
    expect(flags[i + 1], `${what}: value of ${flags[i]}`).to.match(kind === 'N' ? /^[1-9]\d*$/ : /^\S+$/);
  }
  return job;
}

/** Seconds from one run to the next of a daily (`M H * * *`) or hourly (`M * * * *`) schedule; other forms are refused. */
function schedulePeriodSeconds(schedule: string): number {
  const match = present(/^([0-5]?\d) (\*|[01]?\d|2[0-3]) \* \* \*$/.exec(schedule), `schedule "${schedule}": daily (M H * * *) or hourly (M * * * *)`);
  return match[2] === '*' ? 3_600 : 86_400;
}

/**
 * The `gcloud scheduler jobs create http` commands of a README, keyed by
 * the Cloud Run job their --uri runs, each as its --flag=value pairs.
 */
function schedulerCommands(readme: string): Map<string, Map<string, string>> {
  const lines = readme.replace(/\\\n\s*/g, ' ').split('\n');
  const commands = new Map<string, Map<string, string>>();
  for (const line of lines.filter((candidate) => candidate.startsWith('gcloud scheduler jobs create http '))) {
    const flags = new Map([...line.matchAll(/--([a-z-]+)=("[^"]*"|\S+)/g)].map((flag) => [flag[1], flag[2].replace(/^"(.*)"$/, '$1')] as const));
    const job = present(/\/jobs\/([a-z0-9-]+):run$/.exec(flags.get('uri') ?? '')?.[1], `--uri of: ${line}`);
    expect(commands.has(job), `${job} scheduled twice`).to.equal(false);
    commands.set(job, flags);
  }
  return commands;
}

/** The object at `keys` inside a parsed YAML value (throws when there is none). */
function recordAt(value: unknown, keys: ReadonlyArray<string | number>): Record<string, unknown> {
  const found = keys.reduce<unknown>((node, key) => (isRecord(node) || Array.isArray(node) ? (node as Record<string | number, unknown>)[key] : undefined), value);
  if (!isRecord(found)) throw new Error(`no object at ${keys.join('/')}`);
  return found;
}

function present<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) throw new Error(`${what} is missing`);
  return value;
}

/** True when every label the selector asks for is on the pod template, and it asks for one at least. */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const wanted = Object.entries(selector ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels?.[key] === value);
}

/**
 * The container's environment as the kubelet builds it: envFrom ConfigMaps
 * (from the rendered objects), then env, which wins. Only plain values are
 * supported: secret values must not be in the environment, since the
 * service takes Secret Manager resource names and reads them itself.
 */
function environmentOf(container: IContainer, configMaps: readonly ConfigMap[]): { env: Record<string, string>; explicit: Set<string> } {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    expect(source.secretRef, 'envFrom secretRef').to.equal(undefined);
    expect(source.prefix, 'envFrom prefix').to.equal(undefined);
    const name = present(source.configMapRef?.name, 'envFrom configMapRef.name');
    const configMap = configMaps.find((candidate) => candidate.metadata?.name === name);
    Object.assign(env, present(configMap, `ConfigMap ${name} (referenced by envFrom)`).data);
  }
  const explicit = new Set<string>();
  for (const variable of container.env ?? []) {
    expect(variable.valueFrom, `${variable.name} valueFrom`).to.equal(undefined);
    env[variable.name] = present(variable.value, `value of ${variable.name}`);
    explicit.add(variable.name);
  }
  return { env, explicit };
}

/** `text` with every placeholder replaced by its sample value. */
function withSampleText(text: string): string {
  const pattern = new RegExp(`\\b(${Object.keys(PLACEHOLDERS).join('|')})\\b`, 'g');
  return text.replace(pattern, (placeholder) => PLACEHOLDERS[placeholder]);
}

/** `env` with every placeholder replaced by its sample value. */
function withSampleValues(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([name, value]) => [name, withSampleText(value)]));
}

/**
 * The caller authentication a deployment configures: always Google ID
 * tokens checked against a policy file. insecure-none (no authentication,
 * every caller gets everything) is for a developer's machine only.
 */
function googleIdTokenAuth(config: Config): Extract<CallerAuthConfig, { mode: 'google-id-token' }> {
  const { callers } = config;
  if (callers.mode !== 'google-id-token') throw new Error(`TOKENBROKER_CALLER_AUTH is ${callers.mode}: a deployment must use google-id-token`);
  return callers;
}

/** A pod volume as the Kubernetes and the Knative schema write it, as far as files from a ConfigMap or Secret go. */
interface FileVolume {
  name: string;
  configMap?: { name?: string; items?: ReadonlyArray<{ key: string; path: string }> };
  secret?: { secretName?: string; items?: ReadonlyArray<{ key: string; path: string }> };
}

/** Where a file the container reads comes from. */
interface MountedFile {
  volume: FileVolume;
  /** The ConfigMap or Secret key projected to the file. */
  key: string;
  readOnly: boolean;
}

/**
 * Resolves the absolute path `file` to the one volume mounted over its
 * directory and the key projected to it, as the kubelet lays out the
 * volume (the items' paths, or every key as its own file when a ConfigMap
 * volume lists none). Throws when no volume provides the file.
 */
function mountedFile(file: string, container: IContainer, volumes: readonly FileVolume[]): MountedFile {
  expect(path.posix.isAbsolute(file), `${file}: an absolute path`).to.equal(true);
  const dirOf = (mountPath: string) => mountPath.replace(/\/+$/, '');
  const mounts = (container.volumeMounts ?? []).filter((mount) => file.startsWith(`${dirOf(mount.mountPath)}/`));
  expect(mounts.map((mount) => mount.mountPath), `volume mounts over ${file}`).to.have.lengthOf(1);
  const [mount] = mounts;
  expect([mount.subPath, mount.subPathExpr], `${mount.name}: subPath`).to.deep.equal([undefined, undefined]);
  const volume = present(volumes.find((candidate) => candidate.name === mount.name), `volume ${mount.name}`);
  const relative = file.slice(dirOf(mount.mountPath).length + 1);
  const items = volume.configMap?.items ?? volume.secret?.items;
  expect(volume.configMap !== undefined || items !== undefined, `volume ${volume.name}: a ConfigMap, or a secret with items`).to.equal(true);
  const key = items ? items.find((item) => path.posix.normalize(item.path) === relative)?.key : relative;
  return { volume, key: present(key, `an item of volume ${volume.name} at ${relative}`), readOnly: mount.readOnly === true };
}

/**
 * Parses a caller policy as the service does at start, once the
 * placeholders are replaced (throws the service's PolicyError), and
 * returns it with its caller identities, which must be service-account
 * emails: the only identities a Google ID token proves.
 */
function checkedPolicy(text: string, source: string): { policy: CallerPolicy; identities: string[] } {
  const sample = withSampleText(text);
  const policy = CallerPolicy.parse(sample, source);
  const identities = Object.keys(recordAt(parseYaml(sample), ['callers']));
  expect(identities.filter((identity) => !SERVICE_ACCOUNT_EMAIL.test(identity)), `${source}: callers that are not service-account emails`).to.deep.equal([]);
  return { policy, identities };
}

/** The RPCs `policy` grants to any of `identities`. */
function grantedRpcs(policy: CallerPolicy, identities: readonly string[]): string[] {
  return POLICY_RPCS.filter((rpc) => identities.some((identity) => policy.permits(identity, rpc)));
}

/**
 * Checks what every deployment's environment must satisfy and returns the
 * configuration the service would load from it once the placeholders are
 * replaced.
 */
function checkedConfig(env: Record<string, string>): Config {
  const documented = documentedSettings();
  expect(Object.keys(env).filter((name) => !documented.has(name)), 'settings not in the README configuration table').to.deep.equal([]);
  expect(Object.keys(env).filter((name) => LOCAL_ONLY_SETTINGS.includes(name)), 'local-only settings').to.deep.equal([]);
  // A placeholder left in place stops the service at start, naming it.
  expect(() => loadConfig(env)).to.throw(ConfigError, /GOOGLE_CLOUD_PROJECT/);
  return loadConfig(withSampleValues(env));
}

/** How long the preStop hook delays SIGTERM, in ms. */
function preStopMs(container: IContainer): number {
  const preStop = container.lifecycle?.preStop;
  if (!preStop) return 0;
  if (preStop.sleep) return preStop.sleep.seconds * 1000;
  const command = preStop.exec?.command ?? [];
  expect(command, 'preStop hook: only a sleep has a known duration').to.have.lengthOf(2);
  expect(command[0]).to.equal('sleep');
  expect(command[1]).to.match(/^\d+$/);
  return Number(command[1]) * 1000;
}

/** Longest time from SIGTERM to exit: drain, last answers, Firestore close. */
function shutdownMs(config: Config): number {
  return config.shutdownGraceMs + ANSWER_FLUSH_MS + config.firestore.timeoutMs;
}

function expectGrpcProbe(probe: IProbe | undefined, port: number, what: string): void {
  const defined = present(probe, what);
  expect(defined.grpc, `${what}: a native gRPC probe`).to.not.equal(undefined);
  expect(defined.grpc?.port, `${what} port`).to.equal(port);
  expect(defined.grpc?.service ?? '', `${what}: the server's overall health`).to.equal('');
  expect([defined.httpGet, defined.tcpSocket, defined.exec], `${what}: only grpc`).to.deep.equal([undefined, undefined, undefined]);
}

/**
 * The hardening every pod of the service gets: non-root, read-only root
 * filesystem, no privileges or capabilities, the runtime's default seccomp
 * profile, no Kubernetes API token and no service links.
 */
function expectHardened(pod: IPodSpec, container: IContainer, what: string): void {
  const shared = pod.securityContext;
  const own = present(container.securityContext, `${what}: container securityContext`);
  expect(own.runAsNonRoot ?? shared?.runAsNonRoot, `${what}: runAsNonRoot`).to.equal(true);
  expect(own.runAsUser ?? shared?.runAsUser, `${what}: runAsUser`).to.be.a('number').and.above(0);
  expect(own.readOnlyRootFilesystem, `${what}: readOnlyRootFilesystem`).to.equal(true);
  expect(own.allowPrivilegeEscalation, `${what}: allowPrivilegeEscalation`).to.equal(false);
  expect(own.privileged ?? false, `${what}: privileged`).to.equal(false);
  expect(own.capabilities?.drop, `${what}: capabilities dropped`).to.include('ALL');
  expect(own.capabilities?.add ?? [], `${what}: capabilities added`).to.deep.equal([]);
  expect((own.seccompProfile ?? shared?.seccompProfile)?.type, `${what}: seccomp profile`).to.equal('RuntimeDefault');
  expect(pod.automountServiceAccountToken, `${what}: Kubernetes API token mounted`).to.equal(false);
  // Service links would put TOKENBROKER_PORT etc. into the service's configuration prefix.
  expect(pod.enableServiceLinks, `${what}: enableServiceLinks`).to.equal(false);
}

/** A job serves nothing: no port, no probe, no lifecycle hook. */
function expectNoServer(container: IContainer, what: string): void {
  const serving = { ports: container.ports, startupProbe: container.startupProbe, readinessProbe: container.readinessProbe, livenessProbe: container.livenessProbe, lifecycle: container.lifecycle };
  expect(Object.entries(serving).filter(([, value]) => value !== undefined).map(([field]) => field), `${what}: serving fields`).to.deep.equal([]);
}

/** True when a NetworkPolicy's podSelector picks a pod with these labels (an empty one picks every pod of the namespace). */
function podSelectorPicks(selector: { matchLabels?: Record<string, string>; matchExpressions?: unknown[] } | undefined, labels: Record<string, string> | undefined): boolean {
  expect(selector?.matchExpressions, 'podSelector matchExpressions (not supported here)').to.equal(undefined);
  return Object.entries(selector?.matchLabels ?? {}).every(([key, value]) => labels?.[key] === value);
}

describe('deployment manifests', () => {
  it('tests every overlay under k8s/overlays', () => {
    const dirs = readdirSync(OVERLAYS_DIR, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
    expect(dirs.sort()).to.deep.equal(Object.keys(OVERLAYS).sort());
  });

  it('documents every placeholder in k8s/README.md', () => {
    const readme = readFileSync(path.join(K8S_DIR, 'README.md'), 'utf8');
    expect(Object.keys(PLACEHOLDERS).filter((placeholder) => !readme.includes(`\`${placeholder}\``))).to.deep.equal([]);
  });

  it('never turns caller authentication off: no manifest or policy file mentions insecure-none', () => {
    const files = readdirSync(K8S_DIR, { recursive: true, encoding: 'utf8' })
      .filter((file) => file !== 'README.md' && statSync(path.join(K8S_DIR, file)).isFile());
    expect(files).to.include.members(['base/deployment.yaml', 'cloud-run/service.yaml']);
    expect(files.filter((file) => readFileSync(path.join(K8S_DIR, file), 'utf8').includes('insecure-none'))).to.deep.equal([]);
  });

  for (const [overlay, expected] of Object.entries(OVERLAYS)) {
    describe(`k8s/overlays/${overlay}`, () => {
      let objects: ManifestObject[] = [];

      before(async () => {
        objects = await renderKustomization(path.join(OVERLAYS_DIR, overlay));
      });

      function one<M extends { validate(): void }>(model: ModelClass<M>): M {
        const found = instancesOf(objects, model);
        expect(found, `${model.kind} objects`).to.have.lengthOf(1);
        return found[0];
      }
      const deployment = () => one(Deployment);
      const podTemplate = () => present(deployment().spec?.template, 'Deployment pod template');
      const podSpec = (): IPodSpec => present(podTemplate().spec, 'Deployment pod spec');
      const podLabels = () => podTemplate().metadata?.labels;
      const container = (): IContainer => {
        expect(podSpec().containers, 'containers').to.have.lengthOf(1);
        return podSpec().containers[0];
      };
      /** The container port the Service targets, resolved by name. */
      const servicePort = (): number => {
        const ports = present(one(Service).spec?.ports, 'Service ports');
        expect(ports).to.have.lengthOf(1);
        const target = ports[0].targetPort;
        expect(target, 'Service targetPort names a container port').to.be.a('string');
        const port = (container().ports ?? []).find((candidate) => candidate.name === target);
        return present(port, `container port named ${String(target)}`).containerPort;
      };
      const environment = () => environmentOf(container(), instancesOf(objects, ConfigMap));
      /** The caller policy file the pods read, resolved through the volume mounted over it. */
      const policyFile = () => {
        const file = mountedFile(googleIdTokenAuth(loadConfig(withSampleValues(environment().env))).policyFile, container(), podSpec().volumes ?? []);
        const name = present(file.volume.configMap?.name, `volume ${file.volume.name}: a ConfigMap`);
        const configMap = present(instancesOf(objects, ConfigMap).find((candidate) => candidate.metadata?.name === name), `ConfigMap ${name}`);
        return { ...file, configMap, text: present(configMap.data?.[file.key], `key ${file.key} of ConfigMap ${name}`) };
      };
      /** Every CronJob, with its Job and pod specs, its one container and the job command that runs. */
      const cronJobs = () =>
        instancesOf(objects, CronJob).map((cronJob) => {
          const what = nameOf(cronJob);
          const spec = present(cronJob.spec, `${what} spec`);
          const job = present(spec.jobTemplate.spec, `${what} jobTemplate spec`);
          const pod = present(job.template.spec, `${what} pod spec`);
          expect(pod.containers, `${what} containers`).to.have.lengthOf(1);
          expect(pod.initContainers ?? [], `${what} init containers`).to.deep.equal([]);
          const [own] = pod.containers;
          return { what, spec, job, pod, labels: job.template.metadata?.labels, container: own, command: jobOf(own, what) };
        });

      it('has only objects that pass their schema, with no unknown fields', () => {
        expect(objects).to.have.length.above(0);
        for (const object of objects) expect(manifestProblems(object), nameOf(object)).to.deep.equal([]);
      });

      it("puts every object into the overlay's namespace", () => {
        const namespace = present(one(Namespace).metadata?.name, 'Namespace name');
        const elsewhere = objects.filter((object) => object.kind !== 'Namespace' && object.metadata.namespace !== namespace);
        expect(elsewhere.map(nameOf)).to.deep.equal([]);
      });

      it('runs the container as a non-root user on a read-only root filesystem, without privileges', () => {
        expectHardened(podSpec(), container(), 'Deployment');
      });

      it('probes grpc.health.v1 with native gRPC probes on the port the Service targets, where the server listens', () => {
        const port = servicePort();
        expectGrpcProbe(container().startupProbe, port, 'startupProbe');
        expectGrpcProbe(container().readinessProbe, port, 'readinessProbe');
        expectGrpcProbe(container().livenessProbe, port, 'livenessProbe');
        const { env } = environmentOf(container(), instancesOf(objects, ConfigMap));
        expect(loadConfig(withSampleValues(env)).port, 'PORT').to.equal(port);
      });

      it('serves metrics on the container port named metrics, which the scrape annotations name', () => {
        const port = present((container().ports ?? []).find((candidate) => candidate.name === 'metrics'), 'container port named metrics').containerPort;
        const { env } = environmentOf(container(), instancesOf(objects, ConfigMap));
        expect(loadConfig(withSampleValues(env)).metricsPort, 'TOKENBROKER_METRICS_PORT').to.equal(port);
        const annotations = podTemplate().metadata?.annotations ?? {};
        expect(annotations['prometheus.io/scrape']).to.equal('true');
        expect(annotations['prometheus.io/port']).to.equal(String(port));
        expect(annotations['prometheus.io/path']).to.equal('/metrics');
      });

      it('names the Service port grpc with appProtocol grpc', () => {
        const [port] = present(one(Service).spec?.ports, 'Service ports');
        expect(port.name).to.equal('grpc');
        expect(port.appProtocol).to.equal('grpc');
        expect(port.targetPort, 'targetPort').to.equal('grpc');
        expect(port.protocol ?? 'TCP').to.equal('TCP');
      });

      it('selects the pod template from the Deployment, the Service, the PodDisruptionBudget and the NetworkPolicy', () => {
        const labels = podLabels();
        const selector = present(deployment().spec?.selector, 'Deployment selector');
        expect(selector.matchExpressions, 'Deployment matchExpressions').to.equal(undefined);
        expect(selects(selector.matchLabels, labels), 'Deployment selector').to.equal(true);
        expect(selects(one(Service).spec?.selector, labels), 'Service selector').to.equal(true);
        expect(selects(one(PodDisruptionBudget).spec?.selector?.matchLabels, labels), 'PodDisruptionBudget selector').to.equal(true);
        expect(selects(one(NetworkPolicy).spec?.podSelector.matchLabels, labels), 'NetworkPolicy podSelector').to.equal(true);
      });

      it(`runs at least ${expected.minReplicas} replicas, scaled by the HorizontalPodAutoscaler, disrupted one at a time`, () => {
        const name = deployment().metadata?.name;
        const replicas = present(deployment().spec?.replicas, 'Deployment replicas');
        expect(replicas).to.be.at.least(expected.minReplicas);
        const hpa = present(one(HorizontalPodAutoscaler).spec, 'HorizontalPodAutoscaler spec');
        expect(hpa.scaleTargetRef).to.deep.equal({ apiVersion: 'apps/v1', kind: 'Deployment', name });
        const minReplicas = present(hpa.minReplicas, 'HorizontalPodAutoscaler minReplicas');
        expect(minReplicas).to.be.at.least(expected.minReplicas).and.at.most(replicas);
        expect(hpa.maxReplicas).to.be.above(minReplicas);
        const pdb = present(one(PodDisruptionBudget).spec, 'PodDisruptionBudget spec');
        // maxUnavailable lets a node drain even with a single replica; minAvailable must stay below the floor.
        if (pdb.minAvailable === undefined) expect(pdb.maxUnavailable).to.equal(1);
        else expect(pdb.minAvailable).to.be.a('number').and.below(minReplicas);
      });

      it('configures only documented settings, which the service accepts once the placeholders are replaced', () => {
        const { env, explicit } = environmentOf(container(), instancesOf(objects, ConfigMap));
        const config = checkedConfig(env);
        expect(config.projectId).to.equal(PLACEHOLDERS.PROJECT_ID);
        expect(config.secrets.oauthClientRef).to.match(/^projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/]+$/);
        expect(config.secrets.keysetRef).to.match(/^projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/]+$/);
        expect(config.allowedAppClientIds, 'TOKENBROKER_ALLOWED_APP_CLIENT_IDS').to.have.length.above(0);
        expect([...explicit], 'set in the Deployment itself').to.include.members(['PORT', 'TOKENBROKER_SHUTDOWN_GRACE_MS']);
        expect(env.TOKENBROKER_CALLER_AUTH, 'TOKENBROKER_CALLER_AUTH').to.equal('google-id-token');
        expect(googleIdTokenAuth(config).audience, 'TOKENBROKER_CALLER_AUDIENCE').to.equal(PLACEHOLDERS.CALLER_AUDIENCE);
      });

      it('reads the caller policy from its ConfigMap, mounted read-only at TOKENBROKER_POLICY_FILE, which the service accepts', () => {
        const file = policyFile();
        expect(file.readOnly, `volume mount of ${file.volume.name}: readOnly`).to.equal(true);
        // A generated ConfigMap's name carries a hash of its content, so a policy change rolls the pods.
        expect(file.configMap.metadata?.name, 'ConfigMap name with a content hash').to.match(/^tokenbroker-policy-[a-z0-9]{10}$/);
        const { identities } = checkedPolicy(file.text, `${overlay}: ConfigMap ${file.configMap.metadata?.name ?? ''} key ${file.key}`);
        expect(identities).to.have.length.above(0);
      });

      it('gives the pod more time to terminate than the preStop hook, the drain and the Firestore close take', () => {
        const { env } = environmentOf(container(), instancesOf(objects, ConfigMap));
        const config = loadConfig(withSampleValues(env));
        const graceSeconds = present(podSpec().terminationGracePeriodSeconds, 'terminationGracePeriodSeconds');
        expect(graceSeconds * 1000).to.be.above(preStopMs(container()) + shutdownMs(config));
        expect(graceSeconds).to.be.above(config.shutdownGraceMs / 1000);
      });

      it('runs as its Kubernetes service account, bound to a Google service account through Workload Identity', () => {
        const account = one(ServiceAccount);
        expect(podSpec().serviceAccountName).to.equal(account.metadata?.name);
        expect(account.metadata?.annotations?.['iam.gke.io/gcp-service-account']).to.match(SERVICE_ACCOUNT_EMAIL);
      });

      it('admits ingress only to the gRPC port and the metrics port, only from listed peers (NetworkPolicy)', () => {
        const spec = one(NetworkPolicy).spec;
        expect(spec?.policyTypes).to.include('Ingress');
        const rules = present(spec?.ingress, 'NetworkPolicy ingress rules');
        expect(rules).to.have.length.above(0);
        for (const rule of rules) {
          // A rule without from (or ports) admits every source (or port).
          expect(rule.from, 'ingress from').to.be.an('array').with.length.above(0);
          expect(rule.from?.filter((peer) => peer.ipBlock !== undefined), 'ipBlock peers').to.deep.equal([]);
          // The gRPC port for callers; the metrics port (counts only) for the scraper's namespace, in a rule of its own.
          const grpcOnly = (ports: unknown[]) => ports.every((port) => port === 'grpc' || port === servicePort());
          const metricsOnly = (ports: unknown[]) => ports.every((port) => port === 'metrics');
          expect(rule.ports?.map((port) => port.port), 'ingress ports').to.satisfy((ports: unknown[]) => ports.length > 0 && (grpcOnly(ports) || metricsOnly(ports)));
        }
      });

      it('runs every job of src/main.ts from one CronJob: daily, hourly, or suspended as the template of manual runs', () => {
        const jobs = cronJobs();
        expect(jobs.map((job) => job.command).sort(), 'job commands').to.deep.equal(Object.keys(JOBS).sort());
        for (const { what, spec, command } of jobs) {
          const period = JOBS[command];
          expect(spec.timeZone, `${what} timeZone`).to.equal('Etc/UTC');
          if (period === 'on demand') {
            expect(spec.suspend, `${what}: suspended`).to.equal(true);
          } else {
            expect(spec.suspend ?? false, `${what}: suspended`).to.equal(false);
            expect(schedulePeriodSeconds(spec.schedule), `${what}: seconds between runs`).to.equal(period);
          }
        }
      });

      it("runs the jobs from the Deployment's image, as its service account, with exactly its environment", () => {
        const configMaps = instancesOf(objects, ConfigMap);
        const server = environmentOf(container(), configMaps).env;
        for (const { what, pod, container: own } of cronJobs()) {
          expect(own.image, `${what} image`).to.equal(container().image);
          expect(pod.serviceAccountName, `${what} serviceAccountName`).to.equal(podSpec().serviceAccountName);
          // The same settings, from the same ConfigMap, so a job never runs with another configuration.
          expect(environmentOf(own, configMaps).env, `${what} environment`).to.deep.equal(server);
          expect(own.envFrom, `${what} envFrom`).to.deep.equal(container().envFrom);
        }
      });

      it("hardens the job pods like the server's: non-root, read-only root filesystem, no privileges, RuntimeDefault seccomp", () => {
        for (const { what, pod, container: own } of cronJobs()) {
          expectHardened(pod, own, what);
          expect(own.resources?.requests, `${what} resource requests`).to.include.keys('cpu', 'memory');
          expect(own.resources?.limits, `${what} resource limits`).to.include.keys('memory');
        }
      });

      it('gives the jobs no port, no probe and no lifecycle hook: they serve nothing', () => {
        for (const { what, pod, container: own } of cronJobs()) {
          expectNoServer(own, what);
          expect(pod.volumes ?? [], `${what} volumes`).to.deep.equal([]);
        }
      });

      it('runs one job at a time, bounded in time and retries, ended before the next run is due, and cleans up', () => {
        for (const { what, spec, job, pod, command } of cronJobs()) {
          expect(spec.concurrencyPolicy, `${what} concurrencyPolicy`).to.equal('Forbid');
          const startingDeadline = present(spec.startingDeadlineSeconds, `${what} startingDeadlineSeconds`);
          const activeDeadline = present(job.activeDeadlineSeconds, `${what} activeDeadlineSeconds`);
          expect(job.backoffLimit, `${what} backoffLimit`).to.be.a('number').and.at.most(3);
          expect(job.ttlSecondsAfterFinished, `${what} ttlSecondsAfterFinished`).to.be.a('number').and.above(0);
          expect(spec.successfulJobsHistoryLimit, `${what} successfulJobsHistoryLimit`).to.be.a('number').and.above(0);
          expect(spec.failedJobsHistoryLimit, `${what} failedJobsHistoryLimit`).to.be.a('number').and.above(0);
          expect(pod.restartPolicy, `${what} restartPolicy`).to.equal('Never');
          // Exit code 2 is a configuration error: retrying cannot help.
          const failsOnConfigError = (job.podFailurePolicy?.rules ?? []).some(
            (rule) => rule.action === 'FailJob' && rule.onExitCodes?.operator === 'In' && rule.onExitCodes.values.includes(2),
          );
          expect(failsOnConfigError, `${what}: podFailurePolicy fails the Job on exit code 2`).to.equal(true);
          const period = JOBS[command];
          // A late start plus the longest run stays below the period, so Forbid never skips a run.
          if (period !== 'on demand') expect(startingDeadline + activeDeadline, `${what}: starting + active deadline`).to.be.below(period);
        }
      });

      it("keeps the job pods out of the server's selectors, and their egress open", () => {
        const selectors = {
          Deployment: deployment().spec?.selector.matchLabels,
          Service: one(Service).spec?.selector,
          PodDisruptionBudget: one(PodDisruptionBudget).spec?.selector?.matchLabels,
        };
        const policies = instancesOf(objects, NetworkPolicy);
        for (const { what, labels } of cronJobs()) {
          // The Service would send calls to a job pod; the others would count it as a server pod.
          for (const [kind, selector] of Object.entries(selectors)) expect(selects(selector, labels), `${kind} selects ${what} pods`).to.equal(false);
          for (const policy of policies) {
            if (!podSelectorPicks(policy.spec?.podSelector, labels)) continue;
            const types = policy.spec?.policyTypes ?? (policy.spec?.egress ? ['Ingress', 'Egress'] : ['Ingress']);
            // The jobs call Firestore, Secret Manager and Google's OAuth endpoints.
            expect(types, `${nameOf(policy)}: restricts egress of ${what} pods`).to.not.include('Egress');
          }
        }
      });

      if (expected.mesh) {
        const selectsPods = (selector: { matchLabels?: Record<string, string> } | undefined) => selects(selector?.matchLabels, podLabels());

        it('accepts only mutual TLS from the mesh (PeerAuthentication STRICT)', () => {
          const policies = istioObjectsOf<PeerAuthentication>(objects, 'PeerAuthentication');
          expect(policies).to.have.lengthOf(1);
          const { spec } = policies[0];
          expect(selectsPods(spec.selector), 'PeerAuthentication selector').to.equal(true);
          expect(spec.mtls?.mode).to.equal('STRICT');
          expect(spec.portLevelMtls, 'per-port exceptions').to.equal(undefined);
        });

        it('allows only named caller principals, and only to methods the API has (AuthorizationPolicy)', () => {
          const policies = istioObjectsOf<AuthorizationPolicy>(objects, 'AuthorizationPolicy');
          expect(policies).to.have.lengthOf(1);
          const { spec } = policies[0];
          expect(selectsPods(spec.selector), 'AuthorizationPolicy selector').to.equal(true);
          expect(spec.action).to.equal('ALLOW');
          const rules = present(spec.rules, 'AuthorizationPolicy rules');
          expect(rules).to.have.length.above(0);
          const known = [...apiMethodPaths(), ...HEALTH_PATHS];
          for (const rule of rules) {
            expect(rule.when, 'conditions').to.equal(undefined);
            const sources = present(rule.from, 'rule from').map((entry) => entry.source);
            expect(sources).to.have.length.above(0);
            for (const source of sources) {
              // Identity only: other source fields would widen or blur who may call.
              expect(Object.keys(source), 'source fields').to.deep.equal(['principals']);
              expect(source.principals).to.be.an('array').with.length.above(0);
              for (const principal of source.principals ?? []) {
                expect(principal, 'principal').to.match(/^[a-z0-9.-]+\/ns\/[a-z0-9-]+\/sa\/[a-z0-9-]+$/);
              }
            }
            const operations = present(rule.to, 'rule to').map((entry) => entry.operation);
            expect(operations).to.have.length.above(0);
            for (const operation of operations) {
              expect(Object.keys(operation).sort(), 'operation fields').to.deep.equal(['methods', 'paths']);
              expect(operation.methods).to.deep.equal(['POST']);
              expect(operation.paths).to.be.an('array').with.length.above(0);
              expect(operation.paths?.filter((p) => !known.includes(p)), 'paths the API does not serve').to.deep.equal([]);
            }
          }
        });

        it('admits through the mesh exactly the RPCs the caller policy grants (two layers, the same callers)', () => {
          const [authorization] = istioObjectsOf<AuthorizationPolicy>(objects, 'AuthorizationPolicy');
          const admitted = new Set((authorization.spec.rules ?? []).flatMap((rule) => (rule.to ?? []).flatMap((entry) => entry.operation.paths ?? [])));
          const meshRpcs = apiMethodPaths()
            .filter((methodPath) => admitted.has(methodPath))
            .map((methodPath) => methodPath.slice(methodPath.lastIndexOf('/') + 1));
          const { policy, identities } = checkedPolicy(policyFile().text, `${overlay} caller policy`);
          expect(grantedRpcs(policy, identities), 'RPCs the caller policy grants').to.deep.equal(meshRpcs);
        });

        it('gets a sidecar that runs the probes, starts first and outlives the drain', () => {
          const metadata = podTemplate().metadata;
          expect(one(Namespace).metadata?.labels?.['istio-injection']).to.equal('enabled');
          expect(metadata?.labels?.['sidecar.istio.io/inject']).to.equal('true');
          // The kubelet has no mesh certificate: under STRICT mTLS its probes must go to the sidecar agent.
          expect(metadata?.annotations?.['sidecar.istio.io/rewriteAppHTTPProbers']).to.equal('true');
          const proxyConfig: unknown = parseYaml(present(metadata?.annotations?.['proxy.istio.io/config'], 'proxy.istio.io/config annotation'));
          expect(proxyConfig).to.deep.equal({ holdApplicationUntilProxyStarts: true, proxyMetadata: { EXIT_ON_ZERO_ACTIVE_CONNECTIONS: 'true' } });
        });

        it('starts the job pods without an Istio sidecar, which would keep them from ever finishing', () => {
          for (const { what, labels } of cronJobs()) expect(labels?.['sidecar.istio.io/inject'], `${what} sidecar.istio.io/inject`).to.equal('false');
        });
      }
    });
  }

  describe('k8s/cloud-run/service.yaml', () => {
    let objects: ManifestObject[] = [];
    let service: KnativeService;
    let container: IContainer;

    before(() => {
      objects = parseManifests(readFileSync(CLOUD_RUN_SERVICE, 'utf8'), CLOUD_RUN_SERVICE);
      [service] = instancesOf(objects, KnativeService);
      const containers = present(service?.spec?.template?.spec?.containers, 'containers');
      expect(containers).to.have.lengthOf(1);
      // Checked against the Kubernetes Container schema by instancesOf.
      container = new Container(containers[0] as IContainer);
    });

    it('is one Knative Service that passes its schema, with no unknown fields', () => {
      expect(objects.map(nameOf)).to.deep.equal(['Service/tokenbroker']);
      expect(manifestProblems(objects[0])).to.deep.equal([]);
    });

    it('accepts only internal traffic, with invoker IAM checks left on', () => {
      const annotations = service.metadata?.annotations ?? {};
      expect(annotations['run.googleapis.com/ingress']).to.equal('internal');
      expect(annotations['run.googleapis.com/invoker-iam-disabled'] ?? 'false').to.equal('false');
    });

    it('speaks h2c to the container, on the port its gRPC probes use', () => {
      const ports = present(container.ports, 'container ports');
      expect(ports).to.have.lengthOf(1);
      expect(ports[0].name).to.equal('h2c');
      expectGrpcProbe(container.startupProbe, ports[0].containerPort, 'startupProbe');
      expectGrpcProbe(container.livenessProbe, ports[0].containerPort, 'livenessProbe');
    });

    it('runs as a Google service account, with warm instances and a concurrency limit', () => {
      const template = present(service.spec?.template, 'template');
      expect(template.spec?.serviceAccountName).to.match(SERVICE_ACCOUNT_EMAIL);
      expect(Number(template.metadata?.annotations?.['autoscaling.knative.dev/minScale'])).to.be.at.least(1);
      expect(template.spec?.containerConcurrency).to.be.a('number').and.above(0);
    });

    it('configures only documented settings, which the service accepts, and finishes shutting down before SIGKILL', () => {
      const { env } = environmentOf(container, []);
      // Cloud Run sets PORT itself and refuses a manifest that sets it.
      expect(env).to.not.have.property('PORT');
      const config = checkedConfig({ ...env, PORT: String(present(container.ports, 'container ports')[0].containerPort) });
      expect(config.projectId).to.equal(PLACEHOLDERS.PROJECT_ID);
      expect(config.allowedAppClientIds, 'TOKENBROKER_ALLOWED_APP_CLIENT_IDS').to.have.length.above(0);
      expect(env, 'set explicitly').to.have.property('TOKENBROKER_SHUTDOWN_GRACE_MS');
      expect(shutdownMs(config)).to.be.below(CLOUD_RUN_SHUTDOWN_MS);
      expect(env.TOKENBROKER_CALLER_AUTH, 'TOKENBROKER_CALLER_AUTH').to.equal('google-id-token');
    });

    it("authenticates callers with Google ID tokens minted for the service's URL", () => {
      const { audience } = googleIdTokenAuth(loadConfig(withSampleValues(environmentOf(container, []).env)));
      const name = present(service.metadata?.name, 'Service name');
      const region = withSampleText(present(service.metadata?.labels?.['cloud.googleapis.com/location'], 'location label'));
      // Cloud Run's invoker check accepts its own URLs as the audience (or custom audiences, which this service does not set).
      expect(audience, 'TOKENBROKER_CALLER_AUDIENCE: the deterministic service URL').to.equal(`https://${name}-${PLACEHOLDERS.PROJECT_NUMBER}.${region}.run.app`);
    });

    it('reads the caller policy from a Secret Manager volume, mounted read-only at TOKENBROKER_POLICY_FILE, which the service accepts', () => {
      const { policyFile } = googleIdTokenAuth(loadConfig(withSampleValues(environmentOf(container, []).env)));
      const file = mountedFile(policyFile, container, service.spec?.template?.spec?.volumes ?? []);
      expect(file.readOnly, `volume mount of ${file.volume.name}: readOnly`).to.equal(true);
      const secretName = present(file.volume.secret?.secretName, `volume ${file.volume.name}: a secret`);
      expect(file.key, 'the secret version mounted').to.match(/^(latest|[1-9]\d*)$/);
      const source = present(Object.hasOwn(CLOUD_RUN_SECRET_FILES, secretName) ? CLOUD_RUN_SECRET_FILES[secretName] : undefined, `the file secret ${secretName} is created from`);
      const readme = readFileSync(path.join(K8S_DIR, 'README.md'), 'utf8');
      expect(readme, 'k8s/README.md creates the secret from that file').to.match(new RegExp(`gcloud secrets create ${secretName} [^\\n]*--data-file=${source.replaceAll('.', '\\.')}`));
      const { identities } = checkedPolicy(readFileSync(path.join(ROOT, source), 'utf8'), source);
      expect(identities).to.have.length.above(0);
    });
  });

  describe('k8s/cloud-run/jobs', () => {
    let service: KnativeService;
    let serviceContainer: IContainer;
    /** Each file under k8s/cloud-run/jobs with the objects it holds. */
    let files: Array<{ file: string; objects: ManifestObject[] }> = [];

    before(() => {
      [service] = instancesOf(parseManifests(readFileSync(CLOUD_RUN_SERVICE, 'utf8'), CLOUD_RUN_SERVICE), KnativeService);
      const containers = present(service?.spec?.template?.spec?.containers, 'service containers');
      serviceContainer = new Container(containers[0] as IContainer);
      files = readdirSync(CLOUD_RUN_JOBS_DIR)
        .sort()
        .map((file) => ({ file, objects: parseManifests(readFileSync(path.join(CLOUD_RUN_JOBS_DIR, file), 'utf8'), file) }));
    });

    /** Every job, with its task spec, its one container and the job command that runs. */
    const jobs = () =>
      files.map(({ file, objects }) => {
        const [job] = cloudRunJobsOf(objects);
        const what = `cloud-run/jobs/${file}`;
        const execution = job.spec.template.spec;
        const task = execution.template.spec;
        expect(task.containers, `${what} containers`).to.have.lengthOf(1);
        const own = new Container(task.containers[0]);
        return { file, what, job, execution, task, container: own, command: jobOf(own, what) };
      });

    it('is one Cloud Run job per job of src/main.ts, each one object named tokenbroker-JOB in JOB.yaml, passing its shape with no unknown fields', () => {
      for (const { file, objects } of files) {
        expect(objects.map(nameOf), file).to.have.lengthOf(1);
        expect(manifestProblems(objects[0]), file).to.deep.equal([]);
      }
      const found = jobs();
      expect(found.map((job) => job.command).sort(), 'job commands').to.deep.equal(Object.keys(JOBS).sort());
      for (const { file, job, command } of found) {
        expect(file).to.equal(`${command}.yaml`);
        expect(job.metadata.name).to.equal(`tokenbroker-${command}`);
      }
    });

    it("runs the service's image as its service account, in its region, with exactly its environment", () => {
      const serviceEnv = environmentOf(serviceContainer, []).env;
      for (const { what, job, task, container: own } of jobs()) {
        expect(own.image, `${what} image`).to.equal(serviceContainer.image);
        expect(task.serviceAccountName, `${what} serviceAccountName`).to.equal(service.spec?.template?.spec?.serviceAccountName);
        expect(job.metadata.labels?.['cloud.googleapis.com/location'], `${what} region`).to.equal(service.metadata?.labels?.['cloud.googleapis.com/location']);
        // A job never runs with another configuration than the service's.
        expect(environmentOf(own, []).env, `${what} environment`).to.deep.equal(serviceEnv);
        expect(own.resources, `${what} resources`).to.deep.equal(serviceContainer.resources);
      }
    });

    it('gives the jobs no port, no probe, no lifecycle hook and no volume: they serve nothing', () => {
      for (const { what, container: own } of jobs()) {
        expectNoServer(own, what);
        expect(own.volumeMounts, `${what} volumeMounts`).to.equal(undefined);
      }
    });

    it('runs one task per execution, with few retries, all attempts of a scheduled run ending before the next is due', () => {
      const scheduled = schedulerCommands(readFileSync(path.join(K8S_DIR, 'README.md'), 'utf8'));
      for (const { what, job, execution, task, command } of jobs()) {
        // One task walks all grants; two would do the same work twice.
        expect(execution.taskCount ?? 1, `${what} taskCount`).to.equal(1);
        expect(execution.parallelism ?? 1, `${what} parallelism`).to.equal(1);
        const timeout = present(task.timeoutSeconds, `${what} timeoutSeconds`);
        const retries = present(task.maxRetries, `${what} maxRetries`);
        expect(retries, `${what} maxRetries`).to.be.at.most(3);
        const period = JOBS[command];
        // Cloud Run starts an execution on every trigger, even while the last one runs.
        if (period !== 'on demand') {
          const schedule = present(scheduled.get(job.metadata.name)?.get('schedule'), `schedule of ${job.metadata.name}`);
          expect(timeout * (retries + 1), `${what}: timeout x attempts`).to.be.below(schedulePeriodSeconds(schedule));
        }
      }
    });

    it('k8s/README.md schedules exactly the scheduled jobs with Cloud Scheduler, through the Cloud Run Admin API, with an OAuth token', () => {
      const scheduled = schedulerCommands(readFileSync(path.join(K8S_DIR, 'README.md'), 'utf8'));
      const expectedJobs = Object.entries(JOBS).filter(([, period]) => period !== 'on demand');
      expect([...scheduled.keys()].sort(), 'Cloud Run jobs with a Cloud Scheduler command').to.deep.equal(expectedJobs.map(([command]) => `tokenbroker-${command}`).sort());
      for (const [command, period] of expectedJobs) {
        const name = `tokenbroker-${command}`;
        const flags = present(scheduled.get(name), `Cloud Scheduler command for ${name}`);
        expect(flags.get('uri'), `${name} --uri`).to.equal(`https://REGION-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/PROJECT_ID/jobs/${name}:run`);
        expect(flags.get('http-method'), `${name} --http-method`).to.equal('POST');
        // Google APIs take OAuth access tokens; an OIDC token would be refused.
        expect(flags.get('oauth-service-account-email'), `${name} --oauth-service-account-email`).to.match(SERVICE_ACCOUNT_EMAIL);
        expect(flags.get('time-zone'), `${name} --time-zone`).to.equal('Etc/UTC');
        expect(schedulePeriodSeconds(present(flags.get('schedule'), `${name} --schedule`)), `${name}: seconds between runs`).to.equal(period);
      }
    });
  });

  describe('the unknown-field check', () => {
    const deployment: ManifestObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'example', labels: { app: 'example' } },
      spec: {
        selector: { matchLabels: { app: 'example' } },
        template: {
          metadata: { labels: { app: 'example' } },
          spec: { containers: [{ name: 'app', image: 'app', securityContext: { readOnlyRootFilesystem: true } }] },
        },
      },
    };

    it('passes a valid object', () => {
      expect(manifestProblems(deployment)).to.deep.equal([]);
      expect(fieldsTheSchemaIgnores(new Deployment(deployment as never))).to.deep.equal([]);
    });

    it('reports a misspelled field that the schema validator alone accepts', () => {
      const misspelled = structuredClone(deployment);
      recordAt(misspelled, ['spec', 'template', 'spec']).terminationGracePeriodSecond = 30;
      expect(() => new Deployment(misspelled as never).validate()).to.not.throw();
      expect(manifestProblems(misspelled)).to.deep.equal(['/spec/template/spec/terminationGracePeriodSecond: unknown field']);
    });

    it('reports misspelled fields in Istio objects and in Cloud Run containers', () => {
      const peerAuthentication: ManifestObject = {
        apiVersion: 'security.istio.io/v1',
        kind: 'PeerAuthentication',
        metadata: { name: 'example' },
        spec: { mtls: { mode: 'STRICT' }, selctor: {} },
      };
      expect(manifestProblems(peerAuthentication)).to.deep.equal(['/spec/selctor: unknown field']);
      const cloudRun = parseManifests(readFileSync(CLOUD_RUN_SERVICE, 'utf8'), CLOUD_RUN_SERVICE)[0];
      const probe = recordAt(cloudRun, ['spec', 'template', 'spec', 'containers', 0, 'livenessProbe']);
      probe.grcp = probe.grpc;
      expect(manifestProblems(cloudRun).join()).to.include('/livenessProbe/grcp');
    });

    it('reports misspelled fields in CronJobs and in Cloud Run jobs and their containers', () => {
      const cronJob: ManifestObject = {
        apiVersion: 'batch/v1',
        kind: 'CronJob',
        metadata: { name: 'example' },
        spec: {
          schedule: '0 * * * *',
          concurrencyPolcy: 'Forbid',
          jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'app', image: 'app' }] } } } },
        },
      };
      expect(manifestProblems(cronJob)).to.deep.equal(['/spec/concurrencyPolcy: unknown field']);
      const file = path.join(CLOUD_RUN_JOBS_DIR, 'keep-alive.yaml');
      const [job] = parseManifests(readFileSync(file, 'utf8'), file);
      expect(manifestProblems(job)).to.deep.equal([]);
      const task = recordAt(job, ['spec', 'template', 'spec', 'template', 'spec']);
      task.maxRetry = task.maxRetries;
      recordAt(task, ['containers', 0]).comand = ['node'];
      expect(manifestProblems(job)).to.deep.equal(['/spec/template/spec/template/spec/maxRetry: unknown field']);
      delete task.maxRetry;
      expect(manifestProblems(job).join()).to.include('/containers/0 (as a Kubernetes Container): /comand: unknown field');
    });
  });
});
