// When two services may hold one IP: same sharing key, namespaces that agree, no port used twice,
// the same traffic policy and, with Local traffic, the same pods (or one node would get traffic
// for pods it does not have).
import type { ServiceInput } from './inputs.js';

/** Why `a` and `b` cannot share an IP, or undefined when they can. */
export function sharingConflict(a: ServiceInput, b: ServiceInput): string | undefined {
  if (!a.sharing || !b.sharing) return `${b.key} holds it without a sharing key`;
  if (a.sharing.key !== b.sharing.key) return `${b.key} uses sharing key "${b.sharing.key}"`;
  if (a.namespace !== b.namespace) {
    const aAllows = a.sharing.crossNamespaces.has('*') || a.sharing.crossNamespaces.has(b.namespace);
    const bAllows = b.sharing.crossNamespaces.has('*') || b.sharing.crossNamespaces.has(a.namespace);
    if (!aAllows || !bAllows) {
      return `${b.key} is in another namespace and the two do not both allow it (sharing-cross-namespace)`;
    }
  }
  const theirs = new Set(b.sharing.ports);
  const overlap = a.sharing.ports.filter((p) => theirs.has(p));
  if (overlap.length > 0) return `${b.key} also uses port ${overlap.join(', ')}`;
  if (a.sharing.externalTrafficPolicy !== b.sharing.externalTrafficPolicy) {
    return `${b.key} has externalTrafficPolicy ${b.sharing.externalTrafficPolicy}`;
  }
  if (a.sharing.externalTrafficPolicy === 'Local' && a.sharing.podSelector !== b.sharing.podSelector) {
    return `${b.key} selects other pods and traffic policy is Local`;
  }
  return undefined;
}

/** Sharing is only ever refused or allowed as a whole: the first conflict with any holder. */
export function sharingConflictWithAll(a: ServiceInput, holders: Iterable<ServiceInput>): string | undefined {
  for (const b of holders) {
    if (b.key === a.key) continue;
    const why = sharingConflict(a, b);
    if (why !== undefined) return why;
  }
  return undefined;
}
