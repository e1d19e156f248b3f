import { isRecord } from './kustomize';

/**
 * The expected structure of a parsed YAML value, for kinds that have no
 * schema package (Istio's). Objects list every field they may have, so a
 * misspelled field is reported instead of silently ignored.
 */
export type Shape =
  | { type: 'string'; oneOf?: readonly string[] }
  | { type: 'boolean' }
  | { type: 'integer' }
  | { type: 'array'; items: Shape }
  | { type: 'map'; values: Shape }
  | { type: 'object'; fields: Readonly<Record<string, Shape>>; required: readonly string[] }
  | { type: 'checkedElsewhere' };

/** A string, optionally one of `oneOf`. */
export const string = (oneOf?: readonly string[]): Shape => (oneOf ? { type: 'string', oneOf } : { type: 'string' });
/** An array whose every item has shape `items`. */
export const arrayOf = (items: Shape): Shape => ({ type: 'array', items });
/** An object with arbitrary keys, every value of shape `values` (labels, annotations). */
export const mapOf = (values: Shape): Shape => ({ type: 'map', values });
/** An object with exactly these optional fields, of which `required` must be present. */
export const objectOf = (fields: Readonly<Record<string, Shape>>, required: readonly string[] = []): Shape => ({ type: 'object', fields, required });

/**
 * Any value: for a part that another check validates, such as a container
 * checked against the Kubernetes Container schema.
 */
export const checkedElsewhere: Shape = { type: 'checkedElsewhere' };

/** Kubernetes object metadata as manifests write it. */
export const objectMeta = objectOf(
  { name: string(), namespace: string(), labels: mapOf(string()), annotations: mapOf(string()) },
  ['name'],
);

/**
 * Every way `value` departs from `shape`, as `path: problem` lines (empty
 * when it conforms). `path` is a JSON pointer to `value` in its document.
 */
export function shapeProblems(value: unknown, shape: Shape, path = ''): string[] {
  const at = path || '/';
  switch (shape.type) {
    case 'string':
      if (typeof value !== 'string') return [`${at}: expected a string`];
      return shape.oneOf && !shape.oneOf.includes(value) ? [`${at}: expected one of ${shape.oneOf.join(', ')}`] : [];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${at}: expected a boolean`];
    case 'integer':
      return Number.isInteger(value) ? [] : [`${at}: expected an integer`];
    case 'array':
      if (!Array.isArray(value)) return [`${at}: expected an array`];
      return value.flatMap((item: unknown, i) => shapeProblems(item, shape.items, `${path}/${i}`));
    case 'map':
      if (!isRecord(value)) return [`${at}: expected an object`];
      return Object.entries(value).flatMap(([key, item]) => shapeProblems(item, shape.values, `${path}/${key}`));
    case 'checkedElsewhere':
      return [];
    case 'object': {
      if (!isRecord(value)) return [`${at}: expected an object`];
      const missing = shape.required.filter((key) => !(key in value)).map((key) => `${path}/${key}: required`);
      const fields = Object.entries(value).flatMap(([key, item]) => {
        if (!Object.hasOwn(shape.fields, key)) return [`${path}/${key}: unknown field`];
        return shapeProblems(item, shape.fields[key], `${path}/${key}`);
      });
      return [...missing, ...fields];
    }
  }
}
