import type { Clock } from './clock';
import type { Profile } from './grant';

/** Bound on cached profiles; profiles are small and the TTL short. */
const MAX_PROFILES = 10_000;

/** Keeps profiles for a short TTL so repeated GetProfile calls skip the store. */
export class ProfileCache {
  private readonly entries = new Map<string, { profile: Profile; until: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
  ) {}

  /** The cached profile, if still within its TTL. */
  get(userId: string): Profile | undefined {
    const entry = this.entries.get(userId);
    if (!entry) return undefined;
    if (entry.until <= this.clock.now()) {
      this.entries.delete(userId);
      return undefined;
    }
    return entry.profile;
  }

  /** Forgets the user's profile (the user was revoked). */
  delete(userId: string): void {
    this.entries.delete(userId);
  }

  /** Caches `profile` for the TTL. */
  set(profile: Profile): void {
    if (this.ttlMs <= 0) return;
    this.entries.delete(profile.userId);
    if (this.entries.size >= MAX_PROFILES) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(profile.userId, { profile, until: this.clock.now() + this.ttlMs });
  }
}
