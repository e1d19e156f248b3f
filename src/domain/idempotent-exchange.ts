import { createHash } from 'node:crypto';
import { BrokerError } from './broker-error';
import type { Clock } from './clock';
import type { ExchangeCompletion, ExchangeLedger, ExchangeRecord } from './ports';
import { SingleFlight } from './single-flight';

/** Settings of {@link IdempotentExchange}; defaults live in config. */
export interface IdempotentExchangeOptions {
  /** How long a finished exchange is replayed to retries of the same code. */
  replayWindowMs: number;
  /** How long a claim may stay PENDING before another replica may take it (longer than the worst exchange). */
  pendingTimeoutMs: number;
  /** How often a replica waiting on another's PENDING claim looks again. */
  pollIntervalMs: number;
}

/** Who an exchange stored: what the ledger keeps of it. */
export interface ExchangeIdentity {
  userId: string;
  created: boolean;
}

/**
 * What an exchange run by {@link IdempotentExchange.run} returns: its result,
 * and whether it wrote the ledger's DONE record itself (with its grant, see
 * {@link ExchangeCompletion}); when not, the record is written after it.
 */
export interface PerformedExchange<T> {
  result: T;
  completed: boolean;
}

/** The fresh result of the exchange this call (or one sharing it) ran, or a replay from the ledger. */
export type ExchangeOutcome<T> = { result: T } | { replay: ExchangeIdentity };

/**
 * Makes ExchangeCode idempotent per code for a short window: gateways retry
 * after a timeout, and Google answers invalid_grant to the retry because the
 * first attempt already spent the one-time code. Retries on this replica
 * share the first attempt; retries on others wait for its record and replay
 * it. Only a SHA-256 of the code is kept.
 */
export class IdempotentExchange<T extends ExchangeIdentity> {
  private readonly local = new SingleFlight<ExchangeOutcome<T>>();

  constructor(
    private readonly ledger: ExchangeLedger,
    private readonly clock: Clock,
    private readonly options: IdempotentExchangeOptions,
  ) {}

  /**
   * Runs `perform` for `code` at most once in the window, or replays who it
   * stored. `perform` gets the DONE record to write with its grant; the
   * window counts from the moment the exchange starts.
   */
  run(code: string, perform: (completion: ExchangeCompletion) => Promise<PerformedExchange<T>>): Promise<ExchangeOutcome<T>> {
    const codeHash = createHash('sha256').update(code, 'utf8').digest('hex');
    return this.local.run(codeHash, () => this.once(codeHash, perform));
  }

  private async once(codeHash: string, perform: (completion: ExchangeCompletion) => Promise<PerformedExchange<T>>): Promise<ExchangeOutcome<T>> {
    // Waiting is bounded by a count of polls, i.e. by real time, whatever the clock says.
    let pollsLeft = Math.ceil(this.options.pendingTimeoutMs / this.options.pollIntervalMs);
    for (;;) {
      const held = await this.ledger.claim(codeHash, this.clock.now() + this.options.pendingTimeoutMs);
      if (held === undefined) return this.performOwned(codeHash, perform);
      if (held.state === 'DONE') return replay(held);
      // Another replica is exchanging this code right now: wait for its outcome.
      let record: ExchangeRecord | undefined = held;
      while (record?.state === 'PENDING' && pollsLeft > 0) {
        pollsLeft -= 1;
        await new Promise((resolve) => setTimeout(resolve, this.options.pollIntervalMs));
        record = await this.ledger.get(codeHash);
      }
      if (record?.state === 'DONE') return replay(record);
      if (record !== undefined) {
        throw new BrokerError('UPSTREAM_UNAVAILABLE', 'another attempt with this auth code is still in progress: retry shortly');
      }
      // The other attempt gave up without an outcome (or its claim expired): claim again.
    }
  }

  private async performOwned(codeHash: string, perform: (completion: ExchangeCompletion) => Promise<PerformedExchange<T>>): Promise<ExchangeOutcome<T>> {
    const completion = { codeHash, until: this.clock.now() + this.options.replayWindowMs };
    let performed: PerformedExchange<T>;
    try {
      performed = await perform(completion);
    } catch (err: unknown) {
      // Best effort: a claim left behind expires by itself after pendingTimeoutMs.
      await this.ledger.release(codeHash).catch(() => undefined);
      throw err;
    }
    const { result } = performed;
    if (!performed.completed) {
      // The grant is stored (or a newer one was); failing to record the
      // outcome only costs retries their replay, so it must not fail this call.
      const identity = { userId: result.userId, created: result.created };
      await this.ledger.complete(codeHash, identity, completion.until).catch(() => undefined);
    }
    return { result };
  }
}

function replay(record: ExchangeIdentity): { replay: ExchangeIdentity } {
  return { replay: { userId: record.userId, created: record.created } };
}
