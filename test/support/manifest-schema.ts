import { Service as KnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Container, type IContainer } from 'kubernetes-models/v1/Container';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { authorizationPolicyShape, peerAuthenticationShape } from './istio-security';
import { isRecord, type ManifestObject } from './kustomize';
import { arrayOf, checkedElsewhere, mapOf, objectMeta, objectOf, type Shape, shapeProblems, string } from './object-shape';

/** What the schema packages' model classes have in common. */
interface SchemaModel {
  validate(): void;
}

/** A model class of kubernetes-models or @kubernetes-models/knative, e.g. Container. */
type ModelConstructor<M extends SchemaModel> = new (data: never) => M;

/** The model class of a top-level kind, e.g. Deployment. */
export interface ModelClass<M extends SchemaModel> extends ModelConstructor<M> {
  readonly apiVersion: string;
  readonly kind: string;
}

/**
 * Paths (JSON pointers) of the fields of `model` that its schema never
 * looked at: misspelled or misplaced fields, which the generated validators
 * accept silently. It runs the model's own validator on a proxy that records
 * every field read; a validator reads each field its schema declares, and
 * every key of free-form maps such as labels. Throws the schema's error when
 * the model does not validate.
 */
export function fieldsTheSchemaIgnores(model: SchemaModel): string[] {
  const read = new Set<string>();
  const track = (value: unknown, path: string): unknown => {
    if (typeof value !== 'object' || value === null) return value;
    return new Proxy(value, {
      get(target, key, receiver) {
        const field: unknown = Reflect.get(target, key, receiver);
        if (typeof key !== 'string' || !Object.hasOwn(target, key)) return field;
        read.add(`${path}/${key}`);
        return track(field, `${path}/${key}`);
      },
    });
  };
  Reflect.apply(model.validate, track(model, ''), []);
  return unreadPaths(model, read, '');
}

function unreadPaths(value: unknown, read: ReadonlySet<string>, path: string): string[] {
  if (Array.isArray(value)) return value.flatMap((item: unknown, i) => unreadPaths(item, read, `${path}/${i}`));
  if (!isRecord(value)) return [];
  return Object.entries(value).flatMap(([key, field]) => {
    const fieldPath = `${path}/${key}`;
    return read.has(fieldPath) ? unreadPaths(field, read, fieldPath) : [fieldPath];
  });
}

/** Schema errors and ignored fields of `data` checked as a `model` object. */
function modelProblems<M extends SchemaModel>(model: ModelConstructor<M>, data: object, ignoreUnder: readonly string[] = []): string[] {
  const instance = new model(data as never);
  try {
    instance.validate();
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)];
  }
  return fieldsTheSchemaIgnores(instance)
    .filter((path) => !ignoreUnder.some((prefix) => path.startsWith(prefix)))
    .map((path) => `${path}: unknown field`);
}

const CONTAINERS = '/spec/template/spec/containers';

/**
 * The Knative schema predates startup probes and gRPC probes, which Cloud
 * Run supports: containers are checked against the Kubernetes Container
 * schema instead.
 */
function knativeServiceProblems(object: ManifestObject): string[] {
  const problems = modelProblems(KnativeService, object, [`${CONTAINERS}/`]);
  const spec = isRecord(object.spec) && isRecord(object.spec.template) ? object.spec.template.spec : undefined;
  const containers: unknown = isRecord(spec) ? spec.containers : undefined;
  if (!Array.isArray(containers)) return problems;
  return [
    ...problems,
    ...containers.flatMap((container: unknown, i) =>
      isRecord(container)
        ? modelProblems(Container, { name: '(unnamed)', ...container }).map((problem) => `${CONTAINERS}/${i} (as a Kubernetes Container): ${problem}`)
        : [`${CONTAINERS}/${i}: expected an object`],
    ),
  ];
}

/**
 * A Cloud Run job (Cloud Run Admin API v1, as `gcloud run jobs replace`
 * reads it), as far as the manifests under k8s/cloud-run write it. No
 * schema package covers this kind.
 */
export interface CloudRunJob {
  apiVersion: 'run.googleapis.com/v1';
  kind: 'Job';
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        /** Tasks of one execution (default 1). */
        taskCount?: number;
        /** Tasks of one execution that run at once. */
        parallelism?: number;
        template: {
          spec: {
            containers: IContainer[];
            serviceAccountName?: string;
            /** Per attempt of a task (default 600). */
            timeoutSeconds?: number;
            /** Attempts after the first that fail (default 3). */
            maxRetries?: number;
          };
        };
      };
    };
  };
}

const JOB_CONTAINERS = '/spec/template/spec/template/spec/containers';

const cloudRunJobShape: Shape = objectOf(
  {
    apiVersion: string(['run.googleapis.com/v1']),
    kind: string(['Job']),
    metadata: objectMeta,
    spec: objectOf(
      {
        template: objectOf(
          {
            metadata: objectOf({ labels: mapOf(string()), annotations: mapOf(string()) }),
            spec: objectOf(
              {
                taskCount: { type: 'integer' },
                parallelism: { type: 'integer' },
                template: objectOf(
                  {
                    spec: objectOf(
                      {
                        // Checked against the Kubernetes Container schema below.
                        containers: arrayOf(checkedElsewhere),
                        serviceAccountName: string(),
                        timeoutSeconds: { type: 'integer' },
                        maxRetries: { type: 'integer' },
                      },
                      ['containers'],
                    ),
                  },
                  ['spec'],
                ),
              },
              ['template'],
            ),
          },
          ['spec'],
        ),
      },
      ['template'],
    ),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

/** Shape problems of a Cloud Run job, then each container's against the Kubernetes Container schema. */
function cloudRunJobProblems(object: ManifestObject): string[] {
  const problems = shapeProblems(object, cloudRunJobShape);
  if (problems.length > 0) return problems;
  const { containers } = (object as unknown as CloudRunJob).spec.template.spec.template.spec;
  return containers.flatMap((container: unknown, i) =>
    isRecord(container)
      ? modelProblems(Container, { name: '(unnamed)', ...container }).map((problem) => `${JOB_CONTAINERS}/${i} (as a Kubernetes Container): ${problem}`)
      : [`${JOB_CONTAINERS}/${i}: expected an object`],
  );
}

function shaped(shape: Shape): (object: ManifestObject) => string[] {
  return (object) => shapeProblems(object, shape);
}

function modelled<M extends SchemaModel>(model: ModelClass<M>): (object: ManifestObject) => string[] {
  return (object) => modelProblems(model, object);
}

/** Every kind the manifests may contain, by `apiVersion/kind`. */
const CHECKS: Readonly<Record<string, (object: ManifestObject) => string[]>> = {
  'v1/Namespace': modelled(Namespace),
  'v1/ServiceAccount': modelled(ServiceAccount),
  'v1/ConfigMap': modelled(ConfigMap),
  'v1/Service': modelled(Service),
  'apps/v1/Deployment': modelled(Deployment),
  'batch/v1/CronJob': modelled(CronJob),
  'autoscaling/v2/HorizontalPodAutoscaler': modelled(HorizontalPodAutoscaler),
  'policy/v1/PodDisruptionBudget': modelled(PodDisruptionBudget),
  'networking.k8s.io/v1/NetworkPolicy': modelled(NetworkPolicy),
  'serving.knative.dev/v1/Service': knativeServiceProblems,
  'run.googleapis.com/v1/Job': cloudRunJobProblems,
  'security.istio.io/v1/PeerAuthentication': shaped(peerAuthenticationShape),
  'security.istio.io/v1/AuthorizationPolicy': shaped(authorizationPolicyShape),
};

/**
 * Everything wrong with one object against its kind's schema, unknown
 * fields included; empty when it is valid. A kind without a check is a
 * problem too, so that nothing reaches a cluster unchecked.
 */
export function manifestProblems(object: ManifestObject): string[] {
  const id = `${object.apiVersion}/${object.kind}`;
  const check = Object.hasOwn(CHECKS, id) ? CHECKS[id] : undefined;
  if (!check) return [`${id} has no schema check: add one to test/support/manifest-schema.ts`];
  return check(object);
}

/** Describes an object for messages: `Kind/name`. */
export function nameOf(object: { kind: string; metadata?: { name?: string } }): string {
  return `${object.kind}/${object.metadata?.name ?? '(unnamed)'}`;
}

/**
 * The objects of `model`'s kind, as typed model instances, after checking
 * each against the schema (throws naming the first invalid one).
 */
export function instancesOf<M extends SchemaModel>(objects: readonly ManifestObject[], model: ModelClass<M>): M[] {
  return objects
    .filter((object) => object.apiVersion === model.apiVersion && object.kind === model.kind)
    .map((object) => {
      assertValid(object);
      return new model(object as never);
    });
}

/**
 * The objects of an Istio kind, typed as `T`, after checking each against
 * its shape (throws naming the first invalid one).
 */
export function istioObjectsOf<T extends { kind: string }>(objects: readonly ManifestObject[], kind: T['kind']): T[] {
  return objects
    .filter((object) => object.apiVersion === 'security.istio.io/v1' && object.kind === kind)
    .map((object) => {
      assertValid(object);
      return object as unknown as T;
    });
}

/**
 * The Cloud Run jobs among `objects`, typed, after checking each against
 * its shape and its containers against the Container schema (throws
 * naming the first invalid one).
 */
export function cloudRunJobsOf(objects: readonly ManifestObject[]): CloudRunJob[] {
  return objects
    .filter((object) => object.apiVersion === 'run.googleapis.com/v1' && object.kind === 'Job')
    .map((object) => {
      assertValid(object);
      return object as unknown as CloudRunJob;
    });
}

function assertValid(object: ManifestObject): void {
  const problems = manifestProblems(object);
  if (problems.length > 0) throw new Error(`${nameOf(object)} is invalid: ${problems.join('; ')}`);
}
