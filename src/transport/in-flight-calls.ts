import { status, type sendUnaryData } from '@grpc/grpc-js';

/**
 * The unary calls being handled, so a shutdown can answer the ones still
 * running at its deadline with UNAVAILABLE (which callers retry elsewhere)
 * instead of letting the connection drop them as CANCELLED.
 */
export class InFlightCalls {
  private readonly calls = new Set<sendUnaryData<never>>();
  private cut = false;

  /** False once {@link cutAll} ran: every call from then on is answered UNAVAILABLE. */
  get accepting(): boolean {
    return !this.cut;
  }

  /** Number of calls started and not yet answered. */
  get size(): number {
    return this.calls.size;
  }

  /**
   * Wraps a call's callback: the returned one answers at most once, and not
   * at all after {@link cutAll} answered for it.
   */
  track<Res>(callback: sendUnaryData<Res>): sendUnaryData<Res> {
    if (this.cut) {
      callback({ code: status.UNAVAILABLE, details: 'the server is shutting down' }, null);
      return () => undefined;
    }
    const entry = callback as sendUnaryData<never>;
    this.calls.add(entry);
    return (err, value) => {
      if (!this.calls.delete(entry)) return;
      callback(err, value);
    };
  }

  /** Answers every unanswered call with UNAVAILABLE, and every later one too. */
  cutAll(): number {
    this.cut = true;
    const cut = this.calls.size;
    for (const callback of this.calls) callback({ code: status.UNAVAILABLE, details: 'the server is shutting down' }, null);
    this.calls.clear();
    return cut;
  }
}
