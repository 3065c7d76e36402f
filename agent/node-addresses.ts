// This node's own addresses (BGP router ID and next hops, KPR NodePort frontends): given on the
// command line, or read from the interfaces and re-read every 10 s.

/** A node's own addresses: global unicast addresses of its Ethernet links, IPv4 first. */
export function nodeAddressesOf(inventory: { interfaces: readonly { linkType: string; addresses: readonly { ip: string }[] }[] }): string[] {
  const all = inventory.interfaces.filter((i) => i.linkType === 'ether').flatMap((i) => i.addresses.map((a) => a.ip));
  const global = all.filter((ip) => !/^fe[89ab]/i.test(ip) && !ip.startsWith('127.') && ip !== '::1');
  return [...global.filter((ip) => !ip.includes(':')), ...global.filter((ip) => ip.includes(':'))];
}

export interface NodeAddresses {
  readonly get: () => readonly string[];
  readonly stop: () => void;
}

/** The given addresses, or the interfaces' addresses followed; onChange runs after each change. */
export async function followNodeAddresses(given: readonly string[] | undefined, onChange: (addresses: readonly string[]) => void): Promise<NodeAddresses> {
  let addresses: readonly string[] = given ?? [];
  if (given) return { get: () => addresses, stop: () => undefined };
  const { readInventory } = await import('../l2announce/index.js');
  const refresh = async () => {
    const next = await readInventory().then(nodeAddressesOf, () => addresses);
    if (next.join() === addresses.join()) return;
    addresses = next;
    onChange(next);
  };
  await refresh();
  const timer = setInterval(() => void refresh(), 10_000);
  timer.unref();
  return { get: () => addresses, stop: () => clearInterval(timer) };
}
