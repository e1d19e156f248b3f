import { stopAllChildren } from './processes';

/**
 * What a benchmark must stop, as steps pushed when each thing starts: run
 * last-first, every step even when one fails (reported through `say`), then
 * every child process still running is stopped.
 */
export class Cleanup {
  private readonly steps: Array<() => Promise<void> | void> = [];

  push(step: () => Promise<void> | void): void {
    this.steps.push(step);
  }

  async run(say: (line: string) => void): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err: unknown) {
        say(`cleanup step failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    await stopAllChildren();
  }
}
