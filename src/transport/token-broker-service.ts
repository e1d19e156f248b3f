import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Tracer } from '@opentelemetry/api';
import type { Caller, CallerAccess } from '../auth/caller-access';
import type { CallerCredentials } from '../auth/caller-authenticator';
import type { PolicyRpc } from '../auth/caller-policy';
import { BrokerError } from '../domain/broker-error';
import { Deadline } from '../domain/deadline';
import type { Profile } from '../domain/grant';
import type { AccessToken, RevokeResult, TokenBroker } from '../domain/token-broker';
import type { Duration } from '../gen/google/protobuf/duration';
import { GoogleRevocation, GrantState, TokenBrokerServiceService, type GetAccessTokenResponse, type Profile as ProfileMessage, type TokenBrokerServiceServer } from '../gen/tokenbroker/v1/token_broker';
import { describeError } from '../observability/describe-error';
import { EncodedFields, type Logger, type PlainFields } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { cloudLoggingTraceFields, traceContextOf, type TraceContext } from '../observability/trace-context';
import { RpcSpan } from '../observability/tracing';
import { toStatus } from './error-status';
import type { InFlightCalls } from './in-flight-calls';
import { asMessage, encodeResponse, type EncodedResponse } from './encoded-responses';
import { isUndecodable } from './undecodable-request';

/**
 * The gRPC face of {@link TokenBroker}: converts messages to domain calls
 * and domain errors to statuses, and logs one line per call.
 */
export function tokenBrokerService(broker: TokenBroker, context: CallContext): TokenBrokerServiceServer {
  const { access } = context;
  return {
    exchangeCode: unary('ExchangeCode', context, async (req, deadline) => {
      const result = await broker.exchangeCode(req.authCode, req.redirectUri, deadline);
      return {
        response: { userId: result.userId, profile: toProfileMessage(result.profile), grantedScopes: result.grantedScopes, created: result.created },
        log: { event: 'code_exchanged', userId: result.userId, created: result.created },
      };
    }),
    getAccessToken: unary(
      'GetAccessToken',
      context,
      async (req, deadline, caller) => {
        const scopes = access.scopesFor(caller, req.scopes);
        const token = await broker.getAccessToken(req.userId, scopes, durationMs(req.minTtl), deadline);
        return { response: { accessToken: token.accessToken, expireTime: new Date(token.expiresAt), scopes: [...token.scopes] }, log: tokenIssued(req.userId, token) };
      },
      // The hot path: a token already in memory for a caller already verified.
      (req, caller, leadingFields) => {
        const token = broker.cachedAccessToken(req.userId, access.scopesFor(caller, req.scopes), durationMs(req.minTtl));
        return token && { response: cachedTokenResponse(token), log: cachedAuditFields(req.userId, token, leadingFields) };
      },
    ),
    getProfile: unary('GetProfile', context, async (req) => ({
      response: { profile: toProfileMessage(await broker.getProfile(req.userId)) },
      log: { event: 'profile_read', userId: req.userId },
    })),
    getGrantStatus: unary('GetGrantStatus', context, async (req) => {
      const grant = await broker.getGrantStatus(req.userId);
      return {
        response: {
          state: grant.status === 'ACTIVE' ? GrantState.GRANT_STATE_ACTIVE : GrantState.GRANT_STATE_REAUTH_REQUIRED,
          deadReason: grant.deadReason ?? '',
          scopes: grant.scopes,
          createTime: new Date(grant.createdAt),
          signInTime: grant.signedInAt === undefined ? undefined : new Date(grant.signedInAt),
          lastRefreshTime: grant.lastRefreshedAt === undefined ? undefined : new Date(grant.lastRefreshedAt),
          securityEvents: (grant.securityEvents ?? []).map((e) => ({
            type: e.type,
            eventTime: new Date(e.eventTime),
            receiveTime: new Date(e.receiveTime),
            reason: e.reason ?? '',
          })),
        },
        log: { event: 'grant_status_read', userId: req.userId, state: grant.status },
      };
    }),
    revokeUser: unary('RevokeUser', context, async (req, deadline) => {
      const result = await broker.revokeUser(req.userId, deadline);
      return {
        response: { wasStored: result.wasStored, googleRevocation: GOOGLE_REVOCATION[result.google] },
        log: { event: 'user_revoked', userId: req.userId, wasStored: result.wasStored, google: result.google },
      };
    }),
  };
}

const GOOGLE_REVOCATION: Record<RevokeResult['google'], GoogleRevocation> = {
  DONE: GoogleRevocation.GOOGLE_REVOCATION_DONE,
  PENDING: GoogleRevocation.GOOGLE_REVOCATION_PENDING,
  NOT_NEEDED: GoogleRevocation.GOOGLE_REVOCATION_NOT_NEEDED,
};

/** The audit line of an issued token: who got a token for whom and which scopes, never the token itself. */
function tokenIssued(userId: string, token: AccessToken) {
  return { event: 'token_issued', userId, scopes: token.scopes };
}

/** Per cached token, its response's bytes: encoded once however often it is sent, and dropped with the token. */
const cachedResponses = new WeakMap<AccessToken, EncodedResponse<GetAccessTokenResponse>>();

function cachedTokenResponse(token: AccessToken): GetAccessTokenResponse {
  let encoded = cachedResponses.get(token);
  if (!encoded) {
    encoded = encodeResponse(TokenBrokerServiceService.getAccessToken, { accessToken: token.accessToken, expireTime: new Date(token.expiresAt), scopes: [...token.scopes] });
    cachedResponses.set(token, encoded);
  }
  return asMessage(encoded);
}

/** Per cached token, the leading fields of its audit line, serialized once. */
const cachedAuditLines = new WeakMap<AccessToken, EncodedFields>();

/** The leading fields of a cached token's audit line (see {@link LeadingFields}), encoded once per token. */
function cachedAuditFields(userId: string, token: AccessToken, leadingFields: LeadingFields): EncodedFields {
  let encoded = cachedAuditLines.get(token);
  if (encoded?.fields.userId !== userId) {
    encoded = leadingFields(tokenIssued(userId, token));
    cachedAuditLines.set(token, encoded);
  }
  return encoded;
}

/** What every handler shares. */
export interface CallContext {
  logger: Logger;
  inFlight: InFlightCalls;
  /** Budget of a call whose caller set no deadline, and cap on longer ones. */
  callTimeoutMs: number;
  /** Authentication and policy, checked before any handler runs. */
  access: CallerAccess;
  /** Counts and times every answered call. */
  metrics: Metrics;
  /** Makes a server span of every call when tracing is on. */
  tracer?: Tracer;
  /** The project Cloud Logging's trace field names (`projects/<id>/traces/<trace>`). */
  projectId: string;
}

/**
 * The fields of an answered call's log line beyond those every line has
 * (rpc, code, latencyMs, caller, and Cloud Logging's trace fields when the
 * call carried a trace header): what happened, to which user. Never a
 * token, code or secret.
 */
type CallLog = { event: string } & Record<string, unknown>;

/** A handler's answer: the response and its log line. */
interface Answer<Res> {
  response: Res;
  log: CallLog;
}

/** An answer from memory: its log line, or the leading fields of it that {@link LeadingFields} encoded. */
interface AnswerNow<Res> {
  response: Res;
  log: CallLog | EncodedFields;
}

/**
 * Encodes an answered call's log fields with the `rpc` and `code` the line
 * has after them, as the leading fields of the line: kept and passed again,
 * they spare every later line serializing them.
 */
type LeadingFields = (log: { event: string } & PlainFields) => EncodedFields;

/**
 * Wraps a promise-returning handler: success is sent as is, errors go
 * through {@link toStatus}; the call is tracked until answered, and logged
 * in one line either way, counted and timed in the metrics, and traced in
 * a server span when tracing is on (the span is the parent of the upstream
 * calls the handler makes). The handler gets the call's deadline: the
 * caller's, capped at the server's budget.
 *
 * `answerNow`, when given, is tried first for callers admitted from memory:
 * a call it answers synchronously skips the deadline timer, the promises and
 * the tracking (it is answered before a shutdown could cut it). It returns
 * undefined, or throws, to leave the call to `handle`; its log line may be
 * fields it had encoded with `leadingFields` and kept, which then write the
 * line `handle`'s answer would.
 */
function unary<Req, Res>(
  method: PolicyRpc,
  { logger, inFlight, callTimeoutMs, access, metrics, tracer, projectId }: CallContext,
  handle: (req: Req, deadline: Deadline, caller: Caller) => Promise<Answer<Res>>,
  answerNow?: (req: Req, caller: Caller, leadingFields: LeadingFields) => AnswerNow<Res> | undefined,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  const answered = `${method} answered`;
  const leadingFields: LeadingFields = (log) => new EncodedFields({ ...log, rpc: method, code: 'OK' });
  const logAnswered = (started: number, caller: Caller, log: CallLog | EncodedFields, trace: TraceContext | undefined, span: RpcSpan | undefined) => {
    const latencyMs = elapsedMs(started);
    metrics.rpcHandled(method, 'OK', latencyMs / 1000);
    span?.end(status.OK, 'OK', false);
    let fields: Record<string, unknown>;
    let leading: EncodedFields | undefined;
    if (log instanceof EncodedFields) {
      leading = log;
      fields = {};
    } else {
      fields = log;
      fields.rpc = method;
      fields.code = 'OK';
    }
    fields.latencyMs = latencyMs;
    fields.caller = caller.identity;
    if (trace) Object.assign(fields, cloudLoggingTraceFields(projectId, trace));
    logger.info(fields, answered, leading);
  };
  return (call, rawCallback) => {
    const started = performance.now();
    const credentials = credentialsOf(call);
    const incoming = incomingTrace(call);
    const span = tracer ? new RpcSpan(tracer, method, incoming) : undefined;
    // Log lines name the span this service exported, else the caller's.
    const trace = span?.recording ? span.traceContext : incoming;
    if (answerNow && inFlight.accepting && !isUndecodable(call.request)) {
      const caller = access.admitNow(credentials, method);
      let answer: AnswerNow<Res> | undefined;
      try {
        answer = caller && answerNow(call.request, caller, leadingFields);
      } catch {
        // Refused or invalid: the full path gives the refusal its status and log line.
      }
      if (caller && answer) {
        rawCallback(null, answer.response);
        logAnswered(started, caller, answer.log, trace, span);
        return;
      }
    }
    const callback = inFlight.track(rawCallback);
    const deadline = Deadline.in(Math.min(callTimeoutMs, callerRemainingMs(call)));
    let admitted: Caller | undefined;
    const work = access.admit(credentials, method).then((caller) => {
      admitted = caller;
      return isUndecodable(call.request)
        ? Promise.reject(new BrokerError('INVALID_REQUEST', 'the request is not a valid protobuf message'))
        : span
          ? span.run(() => handle(call.request, deadline, caller))
          : handle(call.request, deadline, caller);
    });
    answerBy(deadline, work).then(
      (answer) => {
        callback(null, answer.response);
        logAnswered(started, admitted as Caller, answer.log, trace, span);
      },
      (err: unknown) => {
        const sent = toStatus(err);
        const code = status[sent.code];
        const latencyMs = elapsedMs(started);
        // Errors of the caller's making are routine; ours are not.
        const ours = sent.code === status.INTERNAL || sent.code === status.DATA_LOSS || sent.code === status.UNAVAILABLE;
        metrics.rpcHandled(method, code, latencyMs / 1000);
        span?.end(sent.code, code, ours);
        const fields: Record<string, unknown> = { event: 'rpc_failed', rpc: method, code, latencyMs, caller: admitted?.identity, error: describeError(err) };
        if (trace) Object.assign(fields, cloudLoggingTraceFields(projectId, trace));
        if (ours) {
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
 * The trace the caller sent (W3C `traceparent`, else `x-cloud-trace-context`),
 * when it sent exactly one well-formed header of the kind; see trace-context.ts.
 */
function incomingTrace(call: ServerUnaryCall<unknown, unknown>): TraceContext | undefined {
  const traceparent = call.metadata.get('traceparent');
  const cloudTrace = call.metadata.get('x-cloud-trace-context');
  if (traceparent.length === 0 && cloudTrace.length === 0) return undefined;
  return traceContextOf(traceparent.length === 1 ? traceparent[0] : undefined, cloudTrace.length === 1 ? cloudTrace[0] : undefined);
}

/** Milliseconds since `started` (a performance.now() reading), to the microsecond. */
function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
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
  return new CallCredentials(call);
}

/**
 * A call's credentials, each read from the call only when an authenticator
 * asks for it: each authentication mode reads one of them, and the hot path
 * should pay for nothing else (an object literal with an accessor cost half
 * a kilobyte per call).
 */
class CallCredentials implements CallerCredentials {
  constructor(private readonly call: ServerUnaryCall<unknown, unknown>) {}

  get authorization(): string | undefined {
    const value = this.call.metadata.get('authorization')[0];
    return typeof value === 'string' ? value : undefined;
  }

  get forwardedClientCert(): string | undefined {
    const forwarded = this.call.metadata.get('x-forwarded-client-cert');
    // Several headers are as suspect as several hops: only a single one counts.
    return forwarded.length === 1 && typeof forwarded[0] === 'string' ? forwarded[0] : undefined;
  }

  get peerSubjectAltName(): string | undefined {
    return this.call.getAuthContext().sslPeerCertificate?.subjectaltname;
  }
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
