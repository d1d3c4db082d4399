/**
 * The `redact` option: paths into a record's fields whose values are censored before the record
 * is serialized, as pino's redact does (`password`, `card.number`, `users[*].token`,
 * `headers["x-api-key"]`). Paths are compiled once into a tree; censoring copies only the
 * objects on a matched path, so the caller's objects are never changed.
 */

/** What the `redact` option takes: paths, or paths with the censor (or removal) to apply. */
export type RedactOption = readonly string[] | { paths: readonly string[]; censor?: string; remove?: boolean };

interface PathNode {
  /** Named keys (and array indices as strings) one level down. */
  keys: Map<string, PathNode>;
  /** `*` one level down: every key or index. */
  any: PathNode | undefined;
  /** A path ends here: the value at this node is censored. */
  end: boolean;
}

/** Marks a `*` segment; a quoted `["*"]` is the key named `*`. */
const ANY = Symbol('any');
type Segment = string | typeof ANY;

const newNode = (): PathNode => ({ keys: new Map(), any: undefined, end: false });

/** Splits a path into segments, or says what is wrong with it. */
export function parseRedactPath(path: string): Segment[] | string {
  const segments: Segment[] = [];
  let i = 0;
  const n = path.length;
  if (n === 0) return 'is empty';
  while (i < n) {
    if (path[i] === '[') {
      const close = path.indexOf(']', i);
      if (close < 0) return `has a '[' without ']' at ${i}`;
      const inner = path.slice(i + 1, close);
      const quoted = /^(["'])(.*)\1$/.exec(inner);
      if (quoted) segments.push(quoted[2] as string);
      else if (inner === '*') segments.push(ANY);
      else if (/^\d+$/.test(inner)) segments.push(inner);
      else return `has [${inner}]: brackets hold *, an index or a quoted key`;
      i = close + 1;
    } else {
      let j = i;
      while (j < n && path[j] !== '.' && path[j] !== '[') j++;
      if (j === i) return `has an empty segment at ${i}`;
      const key = path.slice(i, j);
      segments.push(key === '*' ? ANY : key);
      i = j;
    }
    if (i < n && path[i] === '.') {
      i++;
      if (i === n) return 'ends with a dot';
    } else if (i < n && path[i] !== '[') return `has ${JSON.stringify(path[i])} after a ']' at ${i}`;
  }
  return segments;
}

/** A compiled redact option. */
export class Redactor {
  private readonly root = newNode();
  private readonly censor: string;
  private readonly remove: boolean;

  /** Compiles valid paths; check them first with parseRedactPath (resolveOptions does). */
  constructor(paths: readonly Segment[][], censor = '[Redacted]', remove = false) {
    this.censor = censor;
    this.remove = remove;
    for (const segments of paths) {
      let node = this.root;
      for (const segment of segments) {
        if (segment === ANY) node = node.any ??= newNode();
        else {
          let next = node.keys.get(segment);
          if (next === undefined) node.keys.set(segment, (next = newNode()));
          node = next;
        }
      }
      node.end = true;
    }
  }

  /**
   * `fields` with every matched value censored: the same object when no path matched, else a
   * copy (copied along the matched paths only). Plain objects and arrays are followed; class
   * instances, Errors and Dates are not. A getter that throws censors the whole object.
   */
  apply(fields: object): object {
    try {
      return this.visit(fields, this.root);
    } catch {
      return { '[redact failed]': this.censor };
    }
  }

  private visit(value: object, node: PathNode): object {
    let out: Record<string, unknown> | unknown[] | undefined;
    const step = (key: string, child: PathNode): void => {
      const source = (out ?? value) as Record<string, unknown>;
      if (!Object.prototype.hasOwnProperty.call(source, key)) return;
      const current = source[key];
      if (child.end) {
        out ??= copy(value);
        if (this.remove) {
          if (Array.isArray(out)) out[Number(key)] = undefined;
          else delete out[key];
        } else (out as Record<string, unknown>)[key] = this.censor;
        return;
      }
      if (!isFollowed(current)) return;
      const next = this.visit(current, child);
      if (next !== current) {
        out ??= copy(value);
        (out as Record<string, unknown>)[key] = next;
      }
    };
    for (const [key, child] of node.keys) step(key, child);
    if (node.any !== undefined) for (const key of Object.keys(value)) step(key, node.any);
    return out ?? value;
  }
}

function isFollowed(value: unknown): value is object {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return true;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function copy(value: object): Record<string, unknown> | unknown[] {
  return Array.isArray(value) ? value.slice() : (Object.assign({}, value) as Record<string, unknown>);
}
