import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import type { Profile } from '../domain/grant';
import type { TokenBroker } from '../domain/token-broker';
import type { Duration } from '../gen/google/protobuf/duration';
import type { Profile as ProfileMessage, TokenBrokerServiceServer } from '../gen/tokenbroker/v1/token_broker';
import { describeError } from '../observability/describe-error';
import type { Logger } from '../observability/logger';
import { toStatus } from './error-status';
import type { InFlightCalls } from './in-flight-calls';

/**
 * The gRPC face of {@link TokenBroker}: converts messages to domain calls
 * and domain errors to statuses, and logs one line per failed call.
 */
export function tokenBrokerService(broker: TokenBroker, logger: Logger, inFlight: InFlightCalls): TokenBrokerServiceServer {
  return {
    exchangeCode: unary('ExchangeCode', logger, inFlight, async (req) => {
      const result = await broker.exchangeCode(req.authCode, req.redirectUri);
      return {
        userId: result.userId,
        profile: toProfileMessage(result.profile),
        grantedScopes: result.grantedScopes,
        created: result.created,
      };
    }),
    getAccessToken: unary('GetAccessToken', logger, inFlight, async (req) => {
      const token = await broker.getAccessToken(req.userId, req.scopes, durationMs(req.minTtl));
      return { accessToken: token.accessToken, expireTime: new Date(token.expiresAt), scopes: token.scopes };
    }),
    getProfile: unary('GetProfile', logger, inFlight, async (req) => ({
      profile: toProfileMessage(await broker.getProfile(req.userId)),
    })),
  };
}

/**
 * Wraps a promise-returning handler: success is sent as is, errors go
 * through {@link toStatus}; the call is tracked until answered.
 */
function unary<Req, Res>(
  method: string,
  logger: Logger,
  inFlight: InFlightCalls,
  handle: (req: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, rawCallback) => {
    const callback = inFlight.track(rawCallback);
    const started = process.hrtime.bigint();
    handle(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const sent = toStatus(err);
        const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
        const fields = { rpc: method, code: status[sent.code], latencyMs, error: describeError(err) };
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

function durationMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1e6);
}

function toProfileMessage(p: Profile): ProfileMessage {
  return { ...p };
}
