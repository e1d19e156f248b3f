import type { Clock } from '../../src/domain/clock';

/** A clock tests move by hand, starting at the real time. */
export class ManualClock implements Clock {
  private current = Date.now();

  now(): number {
    return this.current;
  }

  /** Moves time forward by `ms`. */
  advance(ms: number): void {
    this.current += ms;
  }
}
