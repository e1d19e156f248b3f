import { Timestamp, type DocumentData } from '@google-cloud/firestore';

/**
 * A `google.firestore.v1.Value` as the Firestore RPC client sends and
 * receives it. Decoded messages name their set member in `valueType` (and
 * may carry every other member at its default value).
 */
export interface WireValue {
  valueType?: string | null;
  nullValue?: unknown;
  booleanValue?: boolean | null;
  integerValue?: number | string | { toString(): string } | null;
  doubleValue?: number | null;
  timestampValue?: WireTimestamp | null;
  stringValue?: string | null;
  bytesValue?: Uint8Array | string | null;
  arrayValue?: { values?: WireValue[] | null } | null;
  mapValue?: { fields?: WireFields | null } | null;
}

export type WireFields = Record<string, WireValue>;

export interface WireTimestamp {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}

/** A Value as {@link encodeFields} writes it: one member set. */
export interface EncodedValue {
  nullValue?: 'NULL_VALUE';
  booleanValue?: boolean;
  integerValue?: number;
  doubleValue?: number;
  timestampValue?: { seconds: number; nanos: number };
  stringValue?: string;
  bytesValue?: Uint8Array;
  arrayValue?: { values: EncodedValue[] };
  mapValue?: { fields: EncodedFields };
}

export type EncodedFields = Record<string, EncodedValue>;

/**
 * The document fields of `data` in Firestore's wire form, typed as the
 * Firestore client library types them: null, booleans, numbers (safe
 * integers as integers, others as doubles), strings, Buffers and
 * Uint8Arrays as bytes, Timestamps, arrays and plain objects (maps). Any
 * other value (undefined, a function, a class instance, a sentinel such as
 * FieldValue.delete()) is a programming error and throws.
 */
export function encodeFields(data: DocumentData): EncodedFields {
  const fields: EncodedFields = {};
  for (const key of Object.keys(data)) fields[key] = encodeValue(data[key], key);
  return fields;
}

/**
 * The document data of wire-form `fields`, as the client library would read
 * it (integers as numbers, bytes as Buffers). A value of a type no document
 * of ours holds (a reference, a geo point) reads as undefined.
 */
export function decodeFields(fields: WireFields | null | undefined): DocumentData {
  const data: DocumentData = {};
  if (!fields) return data;
  for (const key of Object.keys(fields)) data[key] = decodeValue(fields[key] as WireValue);
  return data;
}

/** A wire timestamp as a client-library Timestamp (seconds may arrive as a string or a Long). */
function decodeTimestamp(wire: WireTimestamp): Timestamp {
  return new Timestamp(Number(wire.seconds ?? 0), wire.nanos ?? 0);
}

function encodeValue(value: unknown, path: string): EncodedValue {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'boolean':
      return { booleanValue: value };
    case 'string':
      return { stringValue: value };
    case 'number':
      return Number.isSafeInteger(value) && !Object.is(value, -0) ? { integerValue: value } : { doubleValue: value };
    case 'object':
      break;
    default:
      throw new TypeError(`field ${path}: a ${typeof value} cannot be stored`);
  }
  if (value instanceof Timestamp) return { timestampValue: { seconds: value.seconds, nanos: value.nanoseconds } };
  if (value instanceof Uint8Array) return { bytesValue: value };
  if (Array.isArray(value)) return { arrayValue: { values: value.map((item, i) => encodeValue(item, `${path}[${i}]`)) } };
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) throw new TypeError(`field ${path}: only plain objects can be stored as maps`);
  const fields: EncodedFields = {};
  for (const key of Object.keys(value)) fields[key] = encodeValue((value as Record<string, unknown>)[key], `${path}.${key}`);
  return { mapValue: { fields } };
}

const VALUE_MEMBERS = ['nullValue', 'booleanValue', 'integerValue', 'doubleValue', 'timestampValue', 'stringValue', 'bytesValue', 'arrayValue', 'mapValue'] as const;

function decodeValue(value: WireValue): unknown {
  const member = value.valueType ?? VALUE_MEMBERS.find((m) => value[m] !== undefined && value[m] !== null);
  switch (member) {
    case 'nullValue':
      return null;
    case 'booleanValue':
      return value.booleanValue === true;
    case 'integerValue':
      return Number(value.integerValue ?? 0);
    case 'doubleValue':
      return Number(value.doubleValue ?? 0);
    case 'timestampValue':
      return decodeTimestamp(value.timestampValue ?? {});
    case 'stringValue':
      return value.stringValue ?? '';
    case 'bytesValue':
      return toBuffer(value.bytesValue);
    case 'arrayValue':
      return (value.arrayValue?.values ?? []).map((item) => decodeValue(item));
    case 'mapValue': {
      const data: DocumentData = {};
      const fields = value.mapValue?.fields ?? {};
      for (const key of Object.keys(fields)) data[key] = decodeValue(fields[key] as WireValue);
      return data;
    }
    default:
      // References, geo points, vectors: no document of ours holds one, and
      // the codecs treat a field they cannot read as missing.
      return undefined;
  }
}

function toBuffer(bytes: Uint8Array | string | null | undefined): Buffer {
  if (bytes === null || bytes === undefined) return Buffer.alloc(0);
  if (typeof bytes === 'string') return Buffer.from(bytes, 'base64');
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
