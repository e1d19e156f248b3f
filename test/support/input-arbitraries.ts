import fc from 'fast-check';

// The request contract every RPC shares, as the README states it.
/** Largest request the server reads (README, "Server limits"); larger ones are RESOURCE_EXHAUSTED. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** user_id: 1-255 decimal digits. */
export const USER_ID = /^[0-9]{1,255}$/;

/** Any UTF-16 code unit, lone surrogates included. */
export const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
/** Characters that tend to break parsers, paths, logs, URLs and Firestore document IDs. */
export const nastyChar = fc.oneof(
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('\x7f', '\u0085', '\u00a0', '\u200b', '\u2028', '\ufeff', '\ufffd', '\ud800', '\udfff', '\u{1f600}', '\u{10ffff}'),
  fc.constantFrom(' ', '/', '.', '..', '%', '%00', '\\', '"', "'", '&', '=', '+', '#', '?', '*', '__', '__.*__', '$'),
  fc.constantFrom('０', '١', '٣', '۹', '߀', '𝟎', '¹'),
);

/** Short strings of every kind. */
export function anyString(maxLength = 40): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: codeUnit, maxLength }),
    fc.string({ unit: nastyChar, maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary-ascii', maxLength }),
  );
}

/** Strings of decimal digits. */
export function digits(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...'0123456789'), minLength, maxLength });
}

/**
 * 2,000 to 70,000 UTF-8 bytes (across the 64 KiB limit) of one character
 * repeated: 1- to 4-byte ones, and a lone surrogate (sent as U+FFFD).
 */
export const hugeString = fc
  .tuple(fc.constantFrom('7', 'x', 'é', '€', '\u{1f600}', '\ud800', '\u0000'), fc.integer({ min: 2_000, max: 70_000 }))
  .map(([unit, bytes]) => unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit))));

/** Byte sequences that are not UTF-8. */
export const INVALID_UTF8: readonly number[][] = [
  [0xff], [0xfe], [0x80], [0xbf], // never valid; stray continuation bytes
  [0xc0, 0x80], [0xc0, 0xaf], [0xc0, 0xb1], [0xe0, 0x80, 0xb1], [0xf0, 0x80, 0x80, 0xb1], // overlong NUL, '/', '1'
  [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], // truncated multibyte sequences
  [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], // UTF-16 surrogates encoded as UTF-8
  [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], // beyond U+10FFFF; the old 5-byte form
];

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

export const utf8 = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'utf8'));
