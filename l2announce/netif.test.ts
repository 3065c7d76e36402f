import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type LabHost } from '../lab/index.js';
import { LinkChild } from '../test/l2-link-harness.js';
import { eventually } from '../test/process.js';
import { applyLinkStates, isOperationallyUp, parseAddrJson, parseDefaultRouteJson, type InterfaceInventory } from './netif.js';

// In the shape of `ip -j addr show` on Linux 6.x (fields trimmed): loopback, a veth whose peer is in another namespace,
// a veth without carrier, a dummy (operstate UNKNOWN) and a WireGuard-like link without a MAC.
const addrJson = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', link_type: 'loopback', address: '00:00:00:00:00:00', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }, { family: 'inet6', local: '::1', prefixlen: 128 }] },
  { ifindex: 7, link_index: 3, ifname: 'eth0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], operstate: 'UP', link_type: 'ether', address: '4a:d7:da:9a:95:02', link_netnsid: 0, addr_info: [{ family: 'inet', local: '198.18.0.11', prefixlen: 24 }, { family: 'inet6', local: '2001:db8::11', prefixlen: 64 }, { family: 'inet6', local: 'fe80::48d7:daff:fe9a:9502', prefixlen: 64, scope: 'link' }] },
  { ifindex: 9, ifname: 'eth1', flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'], operstate: 'DOWN', link_type: 'ether', address: '4a:d7:da:9a:95:03', addr_info: [] },
  { ifindex: 10, ifname: 'dummy0', flags: ['BROADCAST', 'NOARP', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', link_type: 'ether', address: '8e:1f:00:00:00:01', addr_info: [{ family: 'inet', local: '198.18.5.1', prefixlen: 32 }] },
  { ifindex: 11, ifname: 'wg0', flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', link_type: 'none', addr_info: [] },
  { ifindex: 12, flags: [] },
]);

describe('parsing iproute2 JSON', () => {
  it('reads names, indexes, MACs, link state and addresses with prefix lengths', () => {
    const links = parseAddrJson(addrJson);
    expect(links.map((l) => [l.name, l.ifindex, l.mac, l.up])).toEqual([
      ['lo', 1, '', true],
      ['eth0', 7, '4a:d7:da:9a:95:02', true],
      ['eth1', 9, '4a:d7:da:9a:95:03', false],
      ['dummy0', 10, '8e:1f:00:00:00:01', true],
      ['wg0', 11, '', true],
    ]);
    expect(links[1]!.addresses).toEqual([
      { ip: '198.18.0.11', prefixLength: 24 },
      { ip: '2001:db8::11', prefixLength: 64 },
      { ip: 'fe80::48d7:daff:fe9a:9502', prefixLength: 64 },
    ]);
    expect(links[2]).toMatchObject({ operstate: 'down', carrier: false });
    expect(parseAddrJson('')).toEqual([]);
    expect(() => parseAddrJson('{}')).toThrow(/JSON array/);
  });

  it('finds the devices of default routes, multipath next hops included', () => {
    expect(parseDefaultRouteJson('[{"dst":"default","gateway":"198.18.0.1","dev":"eth0","flags":[]}]')).toEqual(['eth0']);
    const multipath = [{ dst: 'default', metric: 1024, nexthops: [{ gateway: '2001:db8::1', dev: 'eth1' }, { gateway: '2001:db8:1::1', dev: 'eth0' }] }, { dst: 'default', dev: 'eth0', metric: 2048 }];
    expect(parseDefaultRouteJson(JSON.stringify(multipath))).toEqual(['eth0', 'eth1']);
    expect(parseDefaultRouteJson('[]')).toEqual([]);
  });

  it('counts a link as up with carrier and operstate up, or unknown (drivers that do not report it)', () => {
    expect(isOperationallyUp('up', true)).toBe(true);
    expect(isOperationallyUp('unknown', true)).toBe(true);
    expect(isOperationallyUp('up', false)).toBe(false);
    expect(isOperationallyUp('lowerlayerdown', true)).toBe(false);
    expect(isOperationallyUp('dormant', true)).toBe(false);
  });

  it('applies polled link states at once: down links, vanished and re-created links', () => {
    const inventory: InterfaceInventory = { interfaces: parseAddrJson(addrJson), defaultRoute: { ipv4: ['eth0'], ipv6: ['eth1'] } };
    const states = new Map([
      ['lo', { ifindex: 1, operstate: 'unknown', carrier: true }],
      ['eth0', { ifindex: 7, operstate: 'down', carrier: false }],
      // eth1 vanished; dummy0 was re-created under a new index (its addresses are unknown until the full read).
      ['dummy0', { ifindex: 20, operstate: 'unknown', carrier: true }],
      ['wg0', { ifindex: 11, operstate: 'unknown', carrier: true }],
    ]);
    const applied = applyLinkStates(inventory, states);
    expect(applied.interfaces.map((i) => [i.name, i.up])).toEqual([
      ['lo', true],
      ['eth0', false],
      ['wg0', true],
    ]);
    expect(applied.defaultRoute).toEqual({ ipv4: ['eth0'], ipv6: [] });
  });
});

describe('the interface watcher in a lab namespace', () => {
  let lab: Lab;
  let host: LabHost;
  let child: LinkChild;

  beforeAll(async () => {
    lab = await Lab.create({ name: 'netif' });
    host = await lab.host('h');
    const lan = await lab.bridge('lan');
    await lab.attach(host, lan, { addresses: ['198.18.0.11/24', '2001:db8::11/64'] });
    await lab.attach(host, await lab.bridge('lan2'), { addresses: ['198.18.1.11/24'] });
    child = await LinkChild.start(host, 'raw');
  }, 60_000);

  afterAll(async () => {
    await child?.stop();
    await lab?.destroy({ graceMs: 500 }).catch(() => lab.destroySync());
  });

  it('lists the interfaces as iproute2 and sysfs show them, with default routes', async () => {
    let inventory = await child.interfaces();
    const eth0 = inventory.interfaces.find((i) => i.name === 'eth0')!;
    const sys = async (file: string) => (await host.exec('cat', [`/sys/class/net/eth0/${file}`])).stdout.trim();
    expect(eth0).toMatchObject({ ifindex: Number(await sys('ifindex')), mac: await sys('address'), up: true, operstate: 'up', carrier: true });
    expect(eth0.addresses).toEqual(expect.arrayContaining([{ ip: '198.18.0.11', prefixLength: 24 }, { ip: '2001:db8::11', prefixLength: 64 }]));
    expect(inventory.interfaces.map((i) => i.name).sort()).toEqual(['eth0', 'eth1', 'lo']);
    expect(inventory.defaultRoute).toEqual({ ipv4: [], ipv6: [] });

    await host.addRoute('default', { via: '198.18.1.1' });
    await host.addRoute('default', { via: '2001:db8::1' });
    inventory = await child.interfaces();
    expect(inventory.defaultRoute).toEqual({ ipv4: ['eth1'], ipv6: ['eth0'] });
  });

  it('reports a link going down and coming back, and a new address', async () => {
    const seen = (name: string, up: boolean) => (l: Record<string, unknown>) =>
      l.event === 'interfaces' && (l.inventory as InterfaceInventory).interfaces.some((i) => i.name === name && i.up === up);
    const already = child.events('interfaces').length;
    await host.setLink('eth1', 'down');
    const down = await child.waitFor((l) => child.events('interfaces').indexOf(l) >= already && seen('eth1', false)(l), 5_000, 'eth1 down event');
    // The link going down also takes its routes: the default route leaves with it.
    await eventually(async () => expect((await child.interfaces()).defaultRoute.ipv4).toEqual([]), 5_000, 'route gone');
    expect(down.event).toBe('interfaces');
    await host.setLink('eth1', 'up');
    await child.waitFor((l) => child.events('interfaces').indexOf(l) >= already && seen('eth1', true)(l), 5_000, 'eth1 up event');

    await host.addAddress('eth0', '198.18.0.12/24');
    await eventually(() => {
      const events = child.events('interfaces');
      const last = events[events.length - 1]!.inventory as InterfaceInventory;
      expect(last.interfaces.find((i) => i.name === 'eth0')!.addresses).toContainEqual({ ip: '198.18.0.12', prefixLength: 24 });
    }, 10_000, 'address event');
  });
});
