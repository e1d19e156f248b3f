import { Writable } from 'node:stream';

/** Every log line any service instance wrote during the run, for leak checks. */
export const capturedLogLines: string[] = [];

/** Every credential the suite issued or configured: codes, tokens, client secrets, keys. */
export const issuedSecrets = new Set<string>();

/** A log destination that keeps lines in {@link capturedLogLines} (and `sink`, when given). */
export function captureLogs(sink?: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.length === 0) continue;
        capturedLogLines.push(line);
        sink?.push(line);
      }
      done();
    },
  });
}

/** The issued secrets that occur in `text`. */
export function leakedSecrets(text: string): string[] {
  return [...issuedSecrets].filter((secret) => secret.length >= 8 && text.includes(secret));
}
