import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Caller, CallerAccess } from '../auth/caller-access';
import type { CallerCredentials } from '../auth/caller-authenticator';
import type { PolicyRpc } from '../auth/caller-policy';
import { BrokerError } from '../domain/broker-error';
import { Deadline } from '../domain/deadline';
import type { Profile } from '../domain/grant';
import type { RevokeResult, TokenBroker } from '../domain/token-broker';
import type { Duration } from '../gen/google/protobuf/duration';
import { GoogleRevocation, GrantState, type Profile as ProfileMessage, type TokenBrokerServiceServer } from '../gen/tokenbroker/v1/token_broker';
import { describeError } from '../observability/describe-error';
import type { Logger } from '../observability/logger';
import { toStatus } from './error-status';
import type { InFlightCalls } from './in-flight-calls';
import { isUndecodable } from './undecodable-request';

/**
 * The gRPC face of {@link TokenBroker}: converts messages to domain calls
 * and domain errors to statuses, and logs one line per failed call.
 */
export function tokenBrokerService(broker: TokenBroker, context: CallContext): TokenBrokerServiceServer {
  const { access } = context;
  return {
    exchangeCode: unary('ExchangeCode', context, async (req, deadline) => {
      const result = await broker.exchangeCode(req.authCode, req.redirectUri, deadline);
      return {
        userId: result.userId,
        profile: toProfileMessage(result.profile),
        grantedScopes: result.grantedScopes,
        created: result.created,
      };
    }),
    getAccessToken: unary('GetAccessToken', context, async (req, deadline, caller) => {
      const scopes = access.scopesFor(caller, req.scopes);
      const token = await broker.getAccessToken(req.userId, scopes, durationMs(req.minTtl), deadline);
      // The audit trail: who got a token for whom, never the token itself.
      context.logger.info({ event: 'token_issued', caller: caller.identity, userId: req.userId, scopes: token.scopes }, 'access token issued');
      return { accessToken: token.accessToken, expireTime: new Date(token.expiresAt), scopes: token.scopes };
    }),
    getProfile: unary('GetProfile', context, async (req) => ({
      profile: toProfileMessage(await broker.getProfile(req.userId)),
    })),
    getGrantStatus: unary('GetGrantStatus', context, async (req) => {
      const grant = await broker.getGrantStatus(req.userId);
      return {
        state: grant.status === 'ACTIVE' ? GrantState.GRANT_STATE_ACTIVE : GrantState.GRANT_STATE_REAUTH_REQUIRED,
        deadReason: grant.deadReason ?? '',
        scopes: grant.scopes,
        createTime: new Date(grant.createdAt),
        signInTime: grant.signedInAt === undefined ? undefined : new Date(grant.signedInAt),
        lastRefreshTime: grant.lastRefreshedAt === undefined ? undefined : new Date(grant.lastRefreshedAt),
      };
    }),
    revokeUser: unary('RevokeUser', context, async (req, deadline, caller) => {
      const result = await broker.revokeUser(req.userId, deadline);
      context.logger.info(
        { event: 'user_revoked', caller: caller.identity, userId: req.userId, wasStored: result.wasStored, google: result.google },
        'user revoked',
      );
      return { wasStored: result.wasStored, googleRevocation: GOOGLE_REVOCATION[result.google] };
    }),
  };
}

const GOOGLE_REVOCATION: Record<RevokeResult['google'], GoogleRevocation> = {
  DONE: GoogleRevocation.GOOGLE_REVOCATION_DONE,
  PENDING: GoogleRevocation.GOOGLE_REVOCATION_PENDING,
  NOT_NEEDED: GoogleRevocation.GOOGLE_REVOCATION_NOT_NEEDED,
};

/** What every handler shares. */
export interface CallContext {
  logger: Logger;
  inFlight: InFlightCalls;
  /** Budget of a call whose caller set no deadline, and cap on longer ones. */
  callTimeoutMs: number;
  /** Authentication and policy, checked before any handler runs. */
  access: CallerAccess;
}

/**
 * Wraps a promise-returning handler: success is sent as is, errors go
 * through {@link toStatus}; the call is tracked until answered. The handler
 * gets the call's deadline: the caller's, capped at the server's budget.
 */
function unary<Req, Res>(
  method: PolicyRpc,
  { logger, inFlight, callTimeoutMs, access }: CallContext,
  handle: (req: Req, deadline: Deadline, caller: Caller) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, rawCallback) => {
    const callback = inFlight.track(rawCallback);
    const started = process.hrtime.bigint();
    const deadline = Deadline.in(Math.min(callTimeoutMs, callerRemainingMs(call)));
    let admitted: Caller | undefined;
    const work = access.admit(credentialsOf(call), method).then((caller) => {
      admitted = caller;
      return isUndecodable(call.request)
        ? Promise.reject(new BrokerError('INVALID_REQUEST', 'the request is not a valid protobuf message'))
        : handle(call.request, deadline, caller);
    });
    answerBy(deadline, work).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const sent = toStatus(err);
        const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
        const fields = { rpc: method, code: status[sent.code], latencyMs, caller: admitted?.identity, error: describeError(err) };
        // Errors of the caller's making are routine; ours are not.
        if (sent.code === status.INTERNAL || sent.code === status.DATA_LOSS || sent.code === status.UNAVAILABLE) {
          logger.error(fields, `${method} failed`);
        } else {
          logger.info(fields, `${method} refused`);
        }
        callback(sent, null);
      },
    );
  };
}

/**
 * Settles like `work`, or with DEADLINE_EXCEEDED once `deadline` passes.
 * The work itself goes on: an exchange or refresh under way finishes and
 * keeps its result for the caller's retry.
 */
function answerBy<T>(deadline: Deadline, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BrokerError('DEADLINE_EXCEEDED', 'the call did not finish within its time budget')), deadline.remainingMs());
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}

/** The credentials a call presents: its authorization metadata and, over mutual TLS, the client certificate's SANs. */
function credentialsOf(call: ServerUnaryCall<unknown, unknown>): CallerCredentials {
  const authorization = call.metadata.get('authorization')[0];
  const forwarded = call.metadata.get('x-forwarded-client-cert');
  return {
    authorization: typeof authorization === 'string' ? authorization : undefined,
    // Several headers are as suspect as several hops: only a single one counts.
    forwardedClientCert: forwarded.length === 1 && typeof forwarded[0] === 'string' ? forwarded[0] : undefined,
    // Read on demand: only the mutual-TLS authenticator needs it, and the hot path should not pay for it.
    get peerSubjectAltName() {
      return call.getAuthContext().sslPeerCertificate?.subjectaltname;
    },
  };
}

/** Milliseconds until the caller's deadline; Infinity when it set none. */
function callerRemainingMs(call: ServerUnaryCall<unknown, unknown>): number {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at - Date.now() : Infinity;
}

function durationMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1e6);
}

function toProfileMessage(p: Profile): ProfileMessage {
  return { ...p };
}
