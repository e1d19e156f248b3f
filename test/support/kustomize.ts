import { execFile } from 'node:child_process';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as parsed from YAML, before any schema check. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** Upper bound for one `kubectl kustomize` run (it takes well under a second). */
const RENDER_TIMEOUT_MS = 15_000;

const KUBECTL_MISSING =
  'kubectl is not installed: the manifest tests render k8s/overlays with `kubectl kustomize` (kubectl 1.21 or later, with kustomize v4+). ' +
  'Install the Debian package kubectl from the Google Cloud CLI apt repository (machines of this project ship it), ' +
  'or any kubectl release, onto the PATH.';

/**
 * Renders a kustomization directory with `kubectl kustomize` (offline, no
 * cluster needed) and parses the result. Rejects with an install hint when
 * kubectl is missing, and with kubectl's own message when the build fails.
 */
export async function renderKustomization(dir: string): Promise<ManifestObject[]> {
  const yaml = await new Promise<string>((resolve, reject) => {
    execFile('kubectl', ['kustomize', dir], { timeout: RENDER_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) {
        resolve(stdout);
      } else if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new Error(KUBECTL_MISSING));
      } else if (err.killed) {
        reject(new Error(`kubectl kustomize ${dir} did not finish within ${RENDER_TIMEOUT_MS} ms`));
      } else {
        reject(new Error(`kubectl kustomize ${dir} failed (kubectl 1.21 or later is needed): ${stderr.trim() || err.message}`));
      }
    });
  });
  return parseManifests(yaml, dir);
}

/**
 * Parses multi-document YAML into objects, rejecting YAML errors, empty
 * documents and documents without apiVersion, kind and metadata.name.
 * `source` names the input in error messages.
 */
export function parseManifests(text: string, source: string): ManifestObject[] {
  const objects: ManifestObject[] = [];
  for (const [index, document] of parseAllDocuments(text).entries()) {
    if (document.errors.length > 0) throw new Error(`${source}, document ${index}: ${document.errors[0].message}`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    if (!isManifestObject(value)) throw new Error(`${source}, document ${index}: not a Kubernetes object (apiVersion, kind and metadata.name are required)`);
    objects.push(value);
  }
  return objects;
}

function isManifestObject(value: unknown): value is ManifestObject {
  if (!isRecord(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string') return false;
  return isRecord(value.metadata) && typeof value.metadata.name === 'string';
}

/** True for a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
