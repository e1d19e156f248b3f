import type { GrantStore, ListedGrant } from './ports';

/** Where a sweep starts and how many users a page holds. */
export interface PageOptions {
  startAfter?: string;
  pageSize: number;
}

/**
 * Visits every stored user ID in ascending order, `pageSize` at a time,
 * starting after `startAfter`; `afterPage` runs once each page is done (for
 * progress reports). The jobs that sweep all grants share this.
 */
export function forEachUserId(store: GrantStore, options: PageOptions, visit: (userId: string) => Promise<void>, afterPage: () => void): Promise<void> {
  return forEachListed((after, limit) => store.listUserIds(after, limit), (userId) => userId, options, visit, afterPage);
}

/** Like {@link forEachUserId}, with each grant as the page's query read it (for sweeps that only act on some). */
export function forEachGrant(store: GrantStore, options: PageOptions, visit: (listed: ListedGrant) => Promise<void>, afterPage: () => void): Promise<void> {
  return forEachListed((after, limit) => store.listGrants(after, limit), (listed) => listed.userId, options, visit, afterPage);
}

async function forEachListed<T>(
  list: (after: string | undefined, limit: number) => Promise<T[]>,
  userIdOf: (item: T) => string,
  options: PageOptions,
  visit: (item: T) => Promise<void>,
  afterPage: () => void,
): Promise<void> {
  let after = options.startAfter;
  for (;;) {
    const page = await list(after, options.pageSize);
    for (const item of page) await visit(item);
    afterPage();
    if (page.length < options.pageSize) return;
    after = userIdOf(page[page.length - 1] as T);
  }
}
