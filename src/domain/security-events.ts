import type { Logger } from '../observability/logger';
import { NO_METRICS, type Metrics } from '../observability/metrics';
import type { Clock } from './clock';
import type { GrantRecord, GrantSecurityEvent } from './grant';
import type { GrantStore, SecurityEventLedger } from './ports';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const OAUTH = 'https://schemas.openid.net/secevent/oauth/event-type/';

/**
 * The Cross-Account Protection event types Google sends (the keys of a
 * Security Event Token's `events` claim), by the short name used in logs,
 * stored grants and GetGrantStatus.
 */
export const SECURITY_EVENT_TYPES = {
  'tokens-revoked': `${OAUTH}tokens-revoked`,
  'token-revoked': `${OAUTH}token-revoked`,
  'account-disabled': `${RISC}account-disabled`,
  'account-enabled': `${RISC}account-enabled`,
  'sessions-revoked': `${RISC}sessions-revoked`,
  'account-credential-change-required': `${RISC}account-credential-change-required`,
  verification: `${RISC}verification`,
} as const;

/** A short event name, or `unknown` for a type this service does not act on. */
export type SecurityEventName = keyof typeof SECURITY_EVENT_TYPES | 'unknown';

const NAME_BY_URI = new Map<string, SecurityEventName>(
  Object.entries(SECURITY_EVENT_TYPES).map(([name, uri]) => [uri, name as SecurityEventName]),
);

/** `dead_reason` of grants marked dead by these events. */
export const RISC_DEAD_REASONS = {
  'tokens-revoked': 'risc_tokens_revoked',
  'token-revoked': 'risc_token_revoked',
  'account-disabled': 'risc_account_disabled',
} as const;

/** How Google names a refresh token in a token-revoked event (the whole-token hash we can match). */
export const TOKEN_HASH_ALG = 'hash_base64_sha512_sha512';

/** How many events a grant remembers; older ones are dropped first. */
export const MAX_EVENTS_PER_GRANT = 20;

/** A verified Security Event Token, as the receiver hands it over. */
export interface VerifiedSecurityEventToken {
  jti: string;
  /** Its `iat`, in ms since the epoch. */
  issuedAt: number;
  /** The `events` claim: event type URI -> event object. */
  events: Record<string, unknown>;
}

/** Who an event is about. */
export type SecuritySubject =
  | { kind: 'user'; userId: string }
  | { kind: 'token'; alg: string; tokenType?: string; token: string }
  | { kind: 'none' };

/** One event of a token, parsed. */
export interface SecurityEvent {
  name: SecurityEventName;
  /** The event type URI as sent. */
  type: string;
  subject: SecuritySubject;
  /** account-disabled: `hijacking` or `bulk-account`. */
  reason?: string;
  /** verification: the state the stream:verify call asked for. */
  state?: string;
}

/** What processing one event did, for the audit line (never a token). */
export type SecurityEventOutcome =
  | 'grant_marked_dead'
  | 'grant_already_dead'
  | 'grant_reactivated'
  | 'recorded'
  | 'grant_newer_than_event'
  | 'unknown_user'
  | 'no_matching_grant'
  | 'token_prefix_unmatchable'
  | 'token_identifier_unsupported'
  | 'no_subject'
  | 'verified'
  | 'unknown_event_type';

/** Result of {@link SecurityEventProcessor.process}. */
export interface ProcessResult {
  /** The token's `jti` was processed before: nothing was done again. */
  replay: boolean;
  outcomes: Array<{ name: SecurityEventName; userIds: string[]; outcome: SecurityEventOutcome }>;
}

/** Everything {@link SecurityEventProcessor} talks to, passed in by the composition root. */
export interface SecurityEventDeps {
  grants: GrantStore;
  ledger: SecurityEventLedger;
  /** Drops a user's cached access tokens on every replica (TokenBroker.dropTokens). */
  tokens: { dropTokens(userId: string): Promise<void> };
  clock: Clock;
  logger: Logger;
  /** Counts the grants it marks dead (default: nothing recorded). */
  metrics?: Metrics;
}

/**
 * Acts on verified Cross-Account Protection events: marks grants dead
 * (tokens-revoked, token-revoked, account-disabled) and drops their cached
 * tokens everywhere, records events on the grant for GetGrantStatus
 * (sessions-revoked, account-credential-change-required, and every other
 * event about a stored grant), lifts the account-disabled mark
 * (account-enabled), and logs the rest. Never deletes a grant.
 *
 * A token is processed at most once per `jti`: the ledger is checked first
 * and written last, so a failure in between (answered 503) lets Google's
 * retry do the work again; every step is idempotent per `jti`, so two
 * deliveries racing change nothing twice.
 */
export class SecurityEventProcessor {
  /**
   * @param deps stores and the token dropper
   * @param issuer the `iss` of Google's tokens; an `iss-sub` subject naming another issuer is nobody we know
   */
  constructor(
    private readonly deps: SecurityEventDeps,
    private readonly issuer: string,
  ) {}

  /**
   * Applies every event of a verified token, logging one audit line per
   * event, and records its `jti`. A `jti` seen before changes nothing.
   * Store failures throw BrokerError STORE_UNAVAILABLE (the sender retries).
   */
  async process(token: VerifiedSecurityEventToken): Promise<ProcessResult> {
    const events = parseSecurityEvents(token.events, this.issuer);
    if (await this.deps.ledger.seen(token.jti)) {
      for (const event of events) {
        const userId = event.subject.kind === 'user' ? event.subject.userId : undefined;
        this.deps.logger.info({ event: 'security_event_replayed', type: event.name, userId, outcome: 'replayed', jti: token.jti }, 'security event token already processed');
      }
      return { replay: true, outcomes: [] };
    }
    const outcomes: ProcessResult['outcomes'] = [];
    for (const event of events) {
      const { userIds, outcome } = await this.apply(event, token);
      outcomes.push({ name: event.name, userIds, outcome });
      // The audit line: type, user, outcome; never the token or its subject's token.
      const fields: Record<string, unknown> = { event: 'security_event', type: event.name, userId: userIds[0], outcome, jti: token.jti };
      if (userIds.length > 1) fields.userIds = userIds;
      if (event.name === 'unknown') fields.eventType = event.type.slice(0, 200);
      if (event.reason !== undefined) fields.reason = event.reason;
      if (event.state !== undefined) fields.state = event.state;
      const level = outcome === 'token_prefix_unmatchable' || outcome === 'token_identifier_unsupported' ? 'warn' : 'info';
      this.deps.logger[level](fields, `security event ${event.name}: ${outcome}`);
    }
    await this.deps.ledger.record(token.jti, { issuedAt: token.issuedAt, eventTypes: outcomes.map((o) => o.name) });
    return { replay: false, outcomes };
  }

  private async apply(event: SecurityEvent, token: VerifiedSecurityEventToken): Promise<{ userIds: string[]; outcome: SecurityEventOutcome }> {
    const { subject } = event;
    switch (event.name) {
      case 'verification':
        return { userIds: [], outcome: 'verified' };
      case 'unknown':
        return { userIds: [], outcome: 'unknown_event_type' };
      case 'token-revoked':
        return this.tokenRevoked(event, token);
      default:
        break;
    }
    if (subject.kind !== 'user') return { userIds: [], outcome: 'no_subject' };
    const userId = subject.userId;
    const outcome = await this.applyToGrant(userId, event, token);
    return { userIds: [userId], outcome };
  }

  /** token-revoked names one refresh token: found by its stored hash; a prefix matches nothing we store. */
  private async tokenRevoked(event: SecurityEvent, token: VerifiedSecurityEventToken): Promise<{ userIds: string[]; outcome: SecurityEventOutcome }> {
    const { subject } = event;
    if (subject.kind !== 'token') return { userIds: [], outcome: 'no_subject' };
    if (subject.tokenType !== undefined && subject.tokenType !== 'refresh_token') return { userIds: [], outcome: 'token_identifier_unsupported' };
    // `prefix` carries the token's first characters: we keep only a hash of
    // the whole token, so there is nothing to compare it with.
    if (subject.alg === 'prefix') return { userIds: [], outcome: 'token_prefix_unmatchable' };
    if (subject.alg !== TOKEN_HASH_ALG) return { userIds: [], outcome: 'token_identifier_unsupported' };
    const userIds = await this.deps.grants.findByRefreshTokenHash(subject.token);
    if (userIds.length === 0) return { userIds: [], outcome: 'no_matching_grant' };
    let outcome: SecurityEventOutcome = 'no_matching_grant';
    for (const userId of userIds) {
      outcome = await this.applyToGrant(userId, event, token, subject.token);
    }
    return { userIds, outcome };
  }

  /** Applies one event to one user's grant (atomically), then drops tokens if the grant is dead. */
  private async applyToGrant(userId: string, event: SecurityEvent, token: VerifiedSecurityEventToken, tokenHash?: string): Promise<SecurityEventOutcome> {
    const receiveTime = this.deps.clock.now();
    // Assigned inside the mutation, which the store may run more than once: the last run counts.
    let outcome = 'unknown_user' as SecurityEventOutcome;
    const { after } = await this.deps.grants.update(userId, (current) => {
      const change = grantAfterEvent(current, event, token, receiveTime, tokenHash);
      outcome = change.outcome;
      return change.grant;
    });
    if (outcome === 'grant_marked_dead') (this.deps.metrics ?? NO_METRICS).grantMarkedDead('security_event');
    if (after && after.status === 'REAUTH_REQUIRED' && (outcome === 'grant_marked_dead' || outcome === 'grant_already_dead')) {
      await this.deps.tokens.dropTokens(userId);
    }
    return outcome;
  }
}

/**
 * What one event does to one stored grant: the next state (undefined: leave
 * it) and the outcome. Pure, for store mutations that may run twice.
 */
export function grantAfterEvent(
  current: GrantRecord | undefined,
  event: SecurityEvent,
  token: VerifiedSecurityEventToken,
  receiveTime: number,
  tokenHash?: string,
): { grant: GrantRecord | undefined; outcome: SecurityEventOutcome } {
  if (!current) return { grant: undefined, outcome: tokenHash === undefined ? 'unknown_user' : 'no_matching_grant' };
  // A sign-in stored a new refresh token since: it is no longer the token named.
  if (tokenHash !== undefined && current.refreshTokenHash !== tokenHash) return { grant: undefined, outcome: 'no_matching_grant' };
  const seen = (current.securityEvents ?? []).some((e) => e.jti === token.jti && e.type === event.name);
  const recorded: GrantSecurityEvent = { type: event.name, eventTime: token.issuedAt, receiveTime, jti: token.jti };
  if (event.reason !== undefined) recorded.reason = event.reason;
  const events = seen ? current.securityEvents : [...(current.securityEvents ?? []), recorded].slice(-MAX_EVENTS_PER_GRANT);
  const next: GrantRecord = { ...current, securityEvents: events, updatedAt: receiveTime };

  const deadReason = event.name in RISC_DEAD_REASONS ? RISC_DEAD_REASONS[event.name as keyof typeof RISC_DEAD_REASONS] : undefined;
  if (deadReason !== undefined) {
    // The user signed in again after the event (ID token iat, whole
    // seconds): that grant is newer than what Google revoked or disabled.
    if (current.signedInAt !== undefined && current.signedInAt > token.issuedAt) {
      return { grant: seen ? undefined : next, outcome: 'grant_newer_than_event' };
    }
    if (current.status === 'ACTIVE') {
      return { grant: { ...next, status: 'REAUTH_REQUIRED', deadReason }, outcome: 'grant_marked_dead' };
    }
    // Dead already. Only an account-disabled mark gives way to a stronger
    // cause, so a later account-enabled cannot revive a revoked grant.
    if (current.deadReason === RISC_DEAD_REASONS['account-disabled'] && deadReason !== current.deadReason) {
      return { grant: { ...next, deadReason }, outcome: 'grant_already_dead' };
    }
    return { grant: seen ? undefined : next, outcome: 'grant_already_dead' };
  }
  if (event.name === 'account-enabled' && current.status === 'REAUTH_REQUIRED' && current.deadReason === RISC_DEAD_REASONS['account-disabled']) {
    const revived: GrantRecord = { ...next, status: 'ACTIVE' };
    delete revived.deadReason;
    return { grant: revived, outcome: 'grant_reactivated' };
  }
  return { grant: seen ? undefined : next, outcome: 'recorded' };
}

/**
 * Reads the `events` claim. Google sends one event per token, but the
 * format allows several; each is parsed on its own, at most 10.
 */
export function parseSecurityEvents(events: Record<string, unknown>, issuer: string): SecurityEvent[] {
  return Object.entries(events)
    .slice(0, 10)
    .map(([type, raw]) => {
      const body = isRecord(raw) ? raw : {};
      const event: SecurityEvent = { name: NAME_BY_URI.get(type) ?? 'unknown', type, subject: parseSubject(body, issuer) };
      const reason = shortString(body.reason, 64);
      const state = shortString(body.state, 256);
      if (reason !== undefined) event.reason = reason;
      if (state !== undefined) event.state = state;
      return event;
    });
}

/**
 * The event's subject: `iss-sub` (Google's `sub`, our user ID) for account
 * events, `oauth_token` for token-revoked. Read from the event's `subject`
 * member, or from the event itself when it carries the fields directly.
 */
function parseSubject(body: Record<string, unknown>, issuer: string): SecuritySubject {
  const subject = isRecord(body.subject) ? body.subject : body;
  const type = subject.subject_type;
  if (type === 'oauth_token' || (type === undefined && subject.token_identifier_alg !== undefined)) {
    const alg = shortString(subject.token_identifier_alg, 64);
    const token = shortString(subject.token, 4096);
    if (alg === undefined || token === undefined) return { kind: 'none' };
    const tokenType = shortString(subject.token_type, 64);
    return tokenType === undefined ? { kind: 'token', alg, token } : { kind: 'token', alg, tokenType, token };
  }
  const sub = shortString(subject.sub, 255);
  if (sub === undefined || !/^\d{1,255}$/.test(sub)) return { kind: 'none' };
  // A subject of another issuer names an account that is not Google's.
  if (subject.iss !== undefined && (typeof subject.iss !== 'string' || !sameIssuer(subject.iss, issuer))) return { kind: 'none' };
  return { kind: 'user', userId: sub };
}

/**
 * Google's RISC configuration names its issuer with a trailing slash; the
 * comparison ignores trailing slashes so either spelling matches, and
 * nothing else.
 */
export function sameIssuer(a: string, b: string): boolean {
  return a.replace(/\/+$/, '') === b.replace(/\/+$/, '');
}

function shortString(value: unknown, max: number): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= max ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
