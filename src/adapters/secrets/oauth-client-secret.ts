/** The server OAuth client's credentials. */
export interface OAuthClientCredentials {
  clientId: string;
  clientSecret: string;
}

/**
 * Parses the OAuth client JSON as Google's console downloads it
 * (`client_secret_*.json`): `{"web": {...}}` or `{"installed": {...}}` with
 * `client_id` and `client_secret`. `source` names the setting in errors,
 * which never quote the file.
 */
export function parseOAuthClientJson(json: string, source: string): OAuthClientCredentials {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new Error(`${source}: the OAuth client secret is not valid JSON (expected Google's client_secret_*.json)`);
  }
  const root = (doc ?? {}) as { web?: unknown; installed?: unknown };
  const client = (root.web ?? root.installed) as { client_id?: unknown; client_secret?: unknown } | undefined;
  if (!client || typeof client !== 'object') {
    throw new Error(`${source}: the OAuth client JSON needs a "web" or "installed" object`);
  }
  if (typeof client.client_id !== 'string' || client.client_id === '') {
    throw new Error(`${source}: the OAuth client JSON has no client_id`);
  }
  if (typeof client.client_secret !== 'string' || client.client_secret === '') {
    throw new Error(`${source}: the OAuth client JSON has no client_secret`);
  }
  return { clientId: client.client_id, clientSecret: client.client_secret };
}
