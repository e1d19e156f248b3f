import { arrayOf, mapOf, objectMeta, objectOf, type Shape, string } from './object-shape';

// Istio's security.istio.io/v1 kinds, as far as manifests write them. No
// schema package exists for them; these shapes list every field of the v1
// API so that a misspelled one is caught.

/** Selects the workload's pods by label. */
export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

/** Mutual TLS mode of a PeerAuthentication. */
export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

/** Which traffic a workload's sidecar accepts: plaintext, mTLS, or both. */
export interface PeerAuthentication {
  apiVersion: 'security.istio.io/v1';
  kind: 'PeerAuthentication';
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: {
    selector?: WorkloadSelector;
    mtls?: { mode?: MtlsMode };
    portLevelMtls?: Record<string, { mode?: MtlsMode }>;
  };
}

/** Who a rule applies to; every list is matched as "any of". */
export interface AuthorizationSource {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
}

/** What a rule applies to (for gRPC: POST to /package.Service/Method). */
export interface AuthorizationOperation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** One rule: a request matches when it matches every present part. */
export interface AuthorizationRule {
  from?: Array<{ source: AuthorizationSource }>;
  to?: Array<{ operation: AuthorizationOperation }>;
  when?: Array<{ key: string; values?: string[]; notValues?: string[] }>;
}

/** Allows or denies requests to a workload by caller identity and operation. */
export interface AuthorizationPolicy {
  apiVersion: 'security.istio.io/v1';
  kind: 'AuthorizationPolicy';
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: {
    selector?: WorkloadSelector;
    action?: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
    provider?: { name: string };
    rules?: AuthorizationRule[];
  };
}

const strings = arrayOf(string());
const selector = objectOf({ matchLabels: mapOf(string()) });
const targetRef = objectOf({ group: string(), kind: string(), name: string(), namespace: string() }, ['kind', 'name']);
const mtls = objectOf({ mode: string(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']) });

/** Shape of a security.istio.io/v1 PeerAuthentication. */
export const peerAuthenticationShape: Shape = objectOf(
  {
    apiVersion: string(['security.istio.io/v1']),
    kind: string(['PeerAuthentication']),
    metadata: objectMeta,
    spec: objectOf({ selector, mtls, portLevelMtls: mapOf(mtls) }),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const source = objectOf({
  principals: strings,
  notPrincipals: strings,
  requestPrincipals: strings,
  notRequestPrincipals: strings,
  namespaces: strings,
  notNamespaces: strings,
  serviceAccounts: strings,
  notServiceAccounts: strings,
  ipBlocks: strings,
  notIpBlocks: strings,
  remoteIpBlocks: strings,
  notRemoteIpBlocks: strings,
});
const operation = objectOf({
  hosts: strings,
  notHosts: strings,
  ports: strings,
  notPorts: strings,
  methods: strings,
  notMethods: strings,
  paths: strings,
  notPaths: strings,
});
const rule = objectOf({
  from: arrayOf(objectOf({ source }, ['source'])),
  to: arrayOf(objectOf({ operation }, ['operation'])),
  when: arrayOf(objectOf({ key: string(), values: strings, notValues: strings }, ['key'])),
});

/** Shape of a security.istio.io/v1 AuthorizationPolicy. */
export const authorizationPolicyShape: Shape = objectOf(
  {
    apiVersion: string(['security.istio.io/v1']),
    kind: string(['AuthorizationPolicy']),
    metadata: objectMeta,
    spec: objectOf({
      selector,
      targetRef,
      targetRefs: arrayOf(targetRef),
      action: string(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']),
      provider: objectOf({ name: string() }, ['name']),
      rules: arrayOf(rule),
    }),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);
