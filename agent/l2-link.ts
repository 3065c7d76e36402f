// The real edge of the L2 announcer: the kernel's interfaces (the agent's InterfaceWatcher, shared
// with the north-south datapath) and the AF_PACKET packet link that answers from a worker thread.
// Only Ethernet links can answer ARP/NDP, so only they enter the node's published candidacy.
import { PacketLink, type InterfaceWatcher } from '../l2announce/index.js';
import type { InterfaceSource, Responder } from './l2.js';
import type { Logger } from './log.js';

/** The watcher stays open when the announcer stops: its owner closes it. */
export async function openL2Link(log: Logger, watcher: InterfaceWatcher): Promise<{ responder: Responder; interfaces: InterfaceSource }> {
  const link = await PacketLink.start({ interfaces: watcher, log: (level, msg, fields) => log[level](fields, msg) });
  const unsubscribe: (() => void)[] = [];
  const interfaces: InterfaceSource = {
    snapshot: () => {
      const inventory = watcher.snapshot();
      return {
        interfaces: inventory.interfaces.filter((i) => i.linkType === 'ether').map((i) => ({ name: i.name, up: i.up, addresses: i.addresses })),
        defaultRoute: inventory.defaultRoute,
      };
    },
    onChange: (listener) => void unsubscribe.push(watcher.onChange(() => listener())),
    close: () => unsubscribe.splice(0).forEach((u) => u()),
  };
  return { responder: link, interfaces };
}
