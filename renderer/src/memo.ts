// Remembers the promise of an async lookup by key; a failed lookup is forgotten so it can be retried.

export function memoAsync<K, V>(lookup: (key: K) => Promise<V>): (key: K) => Promise<V> {
  const known = new Map<K, Promise<V>>();
  return (key) => {
    let found = known.get(key);
    if (!found) {
      found = lookup(key);
      found.catch(() => known.delete(key));
      known.set(key, found);
    }
    return found;
  };
}
