import { checkHealth } from '../client/health-client';
import { TokenBrokerClient } from '../client/token-broker-client';
import type { Command } from './args';
import { usageError } from './cli-error';
import type { Connection } from './connection';
import { fromGrpcError } from './grpc-errors';
import { DEFAULT_DEV_EMAIL, DEFAULT_SIGNIN_SCOPES, devUser, loopbackUrl, mintDevCode } from './local-google';
import { exchangeOutcome, grantStatusOutcome, healthOutcome, profileOutcome, revokeOutcome, tokenOutcome, type Outcome } from './output';

/** Where and how long a command runs. */
export interface CommandContext {
  /** host:port of the broker. */
  address: string;
  timeoutMs: number;
  /** Channel and caller credentials (plaintext and no identity when empty). */
  connection: Connection;
  /** The running dev stack's local Google, the default of dev-signin --oauth-url. */
  devOAuthUrl?: string;
  now: () => number;
}

/** Runs `command` against the broker. Throws CliError (or an unexpected error) on failure. */
export async function runCommand(command: Command, context: CommandContext): Promise<Outcome> {
  if (command.name === 'health') {
    const status = await guarded(context, () => checkHealth(context.address, command.service, { timeoutMs: context.timeoutMs, credentials: context.connection.channel }));
    return healthOutcome(command.service, status);
  }
  if (command.name === 'dev-signin') return devSignIn(command, context);

  const client = new TokenBrokerClient(context.address, context.connection.client);
  const options = { timeoutMs: context.timeoutMs };
  try {
    switch (command.name) {
      case 'exchange':
        return exchangeOutcome(
          await guarded(context, () => client.exchangeCode({ authCode: command.code, redirectUri: command.redirectUri }, options)),
        );
      case 'token': {
        const minTtl = command.minTtlSeconds === undefined ? undefined : { seconds: String(command.minTtlSeconds), nanos: 0 };
        const res = await guarded(context, () => client.getAccessToken({ userId: command.userId, scopes: command.scopes, minTtl }, options));
        return tokenOutcome(res, context.now());
      }
      case 'profile':
        return profileOutcome(await guarded(context, () => client.getProfile({ userId: command.userId }, options)));
      case 'status':
        return grantStatusOutcome(await guarded(context, () => client.getGrantStatus({ userId: command.userId }, options)));
      case 'revoke':
        return revokeOutcome(await guarded(context, () => client.revokeUser({ userId: command.userId }, options)));
    }
  } finally {
    client.close();
  }
}

/** Mints a code for a test user at the local Google, then exchanges it like `exchange`. */
async function devSignIn(command: Extract<Command, { name: 'dev-signin' }>, context: CommandContext): Promise<Outcome> {
  const raw = command.oauthUrl ?? context.devOAuthUrl;
  if (raw === undefined) {
    throw usageError('dev-signin needs the local Google: start the dev stack (npm run dev) or pass --oauth-url URL');
  }
  const base = loopbackUrl(raw, command.oauthUrl !== undefined ? '--oauth-url' : 'the oauthUrl in .dev/stack.json');
  const deadline = context.now() + context.timeoutMs;
  const email = command.email ?? DEFAULT_DEV_EMAIL;
  const code = await mintDevCode(
    base,
    {
      user: devUser(email, command.displayName, command.sub),
      scopes: command.scopes.length > 0 ? command.scopes : DEFAULT_SIGNIN_SCOPES,
      consent: command.consent,
    },
    context.timeoutMs,
  );
  const client = new TokenBrokerClient(context.address, context.connection.client);
  try {
    // One deadline for both steps, as --timeout promises.
    const timeoutMs = Math.max(1, deadline - context.now());
    return exchangeOutcome(await guarded(context, () => client.exchangeCode({ authCode: code }, { timeoutMs })));
  } finally {
    client.close();
  }
}

/** Runs a gRPC call, turning its ServiceError into the CliError the user sees. */
async function guarded<T>(context: CommandContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err: unknown) {
    throw fromGrpcError(err, context.address, context.timeoutMs);
  }
}
