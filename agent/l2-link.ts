// The real edge of the L2 announcer: the kernel's interfaces (InterfaceWatcher) and the AF_PACKET
// packet link that answers from a worker thread. Only Ethernet links can answer ARP/NDP, so only
// they enter the node's published candidacy.
import { InterfaceWatcher, PacketLink } from '../l2announce/index.js';
import type { InterfaceSource, Responder } from './l2.js';
import type { Logger } from './log.js';

export async function openL2Link(log: Logger): Promise<{ responder: Responder; interfaces: InterfaceSource }> {
  const watcher = await InterfaceWatcher.start({ onError: (e) => log.warn({ err: e.message }, 'reading the interfaces failed; keeping the last inventory') });
  try {
    const link = await PacketLink.start({ interfaces: watcher, log: (level, msg, fields) => log[level](fields, msg) });
    const interfaces: InterfaceSource = {
      snapshot: () => {
        const inventory = watcher.snapshot();
        return {
          interfaces: inventory.interfaces.filter((i) => i.linkType === 'ether').map((i) => ({ name: i.name, up: i.up, addresses: i.addresses })),
          defaultRoute: inventory.defaultRoute,
        };
      },
      onChange: (listener) => void watcher.onChange(() => listener()),
      close: () => watcher.close(),
    };
    return { responder: link, interfaces };
  } catch (e) {
    watcher.close();
    throw e;
  }
}
