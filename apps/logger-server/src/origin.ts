/**
 * Where a frame's records come from: producer id, app and host together. The server dedups,
 * checkpoints and accounts by origin, never by producer id alone: a producer id is visible to
 * anyone who can read the stream, and a frame forged under it (with another app or host) must
 * not make the server drop the real producer's records as duplicates (see the README's trust
 * model). Names never contain '/', so the key splits back unambiguously.
 */
export function originKey(producer: string, app: string, host: string): string {
  return producer + '/' + app + '/' + host;
}

/** The parts of an origin key; a key without them (a bare producer id, Pub/Sub text) is all producer. */
export function parseOrigin(origin: string): { producer: string; app: string | undefined; host: string | undefined } {
  const first = origin.indexOf('/');
  const last = origin.lastIndexOf('/');
  if (first === -1 || first === last) return { producer: origin, app: undefined, host: undefined };
  return { producer: origin.slice(0, first), app: origin.slice(first + 1, last), host: origin.slice(last + 1) };
}
