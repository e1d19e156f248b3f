import type { GrantStore } from './ports';

/**
 * Visits every stored user ID in ascending order, `pageSize` at a time,
 * starting after `startAfter`; `afterPage` runs once each page is done (for
 * progress reports). The jobs that sweep all grants share this.
 */
export async function forEachUserId(
  store: GrantStore,
  options: { startAfter?: string; pageSize: number },
  visit: (userId: string) => Promise<void>,
  afterPage: () => void,
): Promise<void> {
  let after = options.startAfter;
  for (;;) {
    const page = await store.listUserIds(after, options.pageSize);
    for (const userId of page) await visit(userId);
    afterPage();
    if (page.length < options.pageSize) return;
    after = page[page.length - 1];
  }
}
