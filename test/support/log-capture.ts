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

/** Prefixes Google puts before the random part of its credentials. */
const CREDENTIAL_PREFIX = /^(ya29\.|1\/\/|4\/0|GOCSPX-)/;

/**
 * The issued secrets that occur in `text`, whole or as their random part
 * without Google's prefix (so a log that trimmed the prefix still counts).
 */
export function leakedSecrets(text: string): string[] {
  return [...issuedSecrets].filter((secret) => {
    const body = secret.replace(CREDENTIAL_PREFIX, '');
    return (secret.length >= 8 && text.includes(secret)) || (body.length >= 16 && text.includes(body.slice(0, 24)));
  });
}
