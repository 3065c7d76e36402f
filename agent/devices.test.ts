import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InterfaceInventory, NetInterface } from '../l2announce/index.js';
import { Lab, type LabHost, type LabProcess } from '../lab/index.js';
import { eventually, root } from '../test/process.js';
import { DeviceFollower, planDeviceChanges, selectDevices, type InterfaceFeed } from './devices.js';
import { createLogger } from './log.js';

const links = (...names: string[]) => names.map((name) => ({ name }));
const noRoutes = { ipv4: [], ipv6: [] };

describe('selectDevices', () => {
  it('takes the interfaces of the IPv4 and IPv6 default routes when no devices are given', () => {
    const present = links('lo', 'eth0', 'eth1', 'wg0');
    expect(selectDevices(undefined, present, { ipv4: ['eth1'], ipv6: ['eth0', 'eth1'] })).toEqual({ devices: ['eth0', 'eth1'], missing: [] });
    expect(selectDevices([], present, { ipv4: ['wg0'], ipv6: [] }).devices).toEqual(['wg0']);
    // A route through a link that is already gone does not choose it.
    expect(selectDevices(undefined, present, { ipv4: ['eth9'], ipv6: [] })).toEqual({
      devices: [],
      missing: [{ spec: 'default route', reason: 'no_default_route', message: 'no interface carries an IPv4 or IPv6 default route' }],
    });
  });

  it('takes given names and prefixes with a trailing "+", and says why each entry chose nothing', () => {
    const present = links('lo', 'eth0', 'eth1', 'bond0', 'ens3');
    const { devices, missing } = selectDevices(['eth+', 'bond0', 'eth0', 'wlan0', 'vlan+', 'a/b', 'abcdefghijklmnop', 'lo:1'], present, { ipv4: ['ens3'], ipv6: [] });
    expect(devices).toEqual(['bond0', 'eth0', 'eth1']);
    expect(missing.map((m) => [m.spec, m.reason])).toEqual([
      ['wlan0', 'not_found'],
      ['vlan+', 'no_match'],
      ['a/b', 'invalid_name'],
      ['abcdefghijklmnop', 'invalid_name'],
      ['lo:1', 'invalid_name'],
    ]);
    expect(missing[1]!.message).toBe('no interface name starts with "vlan"');
    expect(selectDevices(['+'], present, noRoutes).devices).toEqual(['bond0', 'ens3', 'eth0', 'eth1', 'lo']);
  });
});

describe('planDeviceChanges', () => {
  it('detaches what is no longer wanted, attaches what is new, and does both for a name whose ifindex changed', () => {
    const attached = [{ name: 'eth0', ifindex: 2 }, { name: 'eth1', ifindex: 3 }, { name: 'ext1', ifindex: 9 }];
    const wanted = [{ name: 'eth0', ifindex: 2 }, { name: 'ext1', ifindex: 12 }, { name: 'ext2', ifindex: 13 }];
    expect(planDeviceChanges(attached, wanted)).toEqual({
      detach: [{ name: 'eth1', ifindex: 3 }, { name: 'ext1', ifindex: 9 }],
      attach: [{ name: 'ext1', ifindex: 12 }, { name: 'ext2', ifindex: 13 }],
    });
    expect(planDeviceChanges(wanted, wanted)).toEqual({ detach: [], attach: [] });
  });
});

/** An interface feed the test changes by hand. */
class FakeInterfaces implements InterfaceFeed {
  private listeners = new Set<(inventory: InterfaceInventory) => void>();
  constructor(private inventory: InterfaceInventory) {}
  static of(links: [string, number][], defaultRoute: InterfaceInventory['defaultRoute'] = noRoutes): FakeInterfaces {
    return new FakeInterfaces(FakeInterfaces.inventory(links, defaultRoute));
  }
  static inventory(links: [string, number][], defaultRoute: InterfaceInventory['defaultRoute'] = noRoutes): InterfaceInventory {
    const iface = ([name, ifindex]: [string, number]): NetInterface => ({ name, ifindex, mac: '', linkType: 'ether', operstate: 'up', carrier: true, up: true, addresses: [] });
    return { interfaces: links.map(iface), defaultRoute };
  }
  snapshot(): InterfaceInventory {
    return this.inventory;
  }
  onChange(listener: (inventory: InterfaceInventory) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(links: [string, number][], defaultRoute: InterfaceInventory['defaultRoute'] = noRoutes): void {
    this.inventory = FakeInterfaces.inventory(links, defaultRoute);
    for (const l of this.listeners) l(this.inventory);
  }
}

describe('DeviceFollower on a fed inventory', () => {
  const log = createLogger({ level: 'silent' });
  const followers: DeviceFollower[] = [];
  afterEach(async () => {
    for (const f of followers.splice(0)) await f.close();
  });

  const follow = async (spec: string[] | undefined, interfaces: FakeInterfaces, extra: { attached?: { name: string; ifindex: number }[]; failAttach?: Set<string>; failDetach?: Set<string> } = {}) => {
    const calls: string[] = [];
    const call = (what: string, fail: Set<string> | undefined) => (name: string, ifindex: number) => {
      calls.push(`${what} ${name}/${ifindex}`);
      if (fail?.has(name)) throw new Error(`${what} ${name} refused`);
    };
    const follower = await DeviceFollower.start({ spec, interfaces, log, retryMs: 10, attach: call('attach', extra.failAttach), detach: call('detach', extra.failDetach), ...(extra.attached ? { attached: extra.attached } : {}) });
    followers.push(follower);
    return { follower, calls };
  };

  it('attaches the chosen devices, detaches deselected ones, and re-attaches a device that returns with a new ifindex', async () => {
    const feed = FakeInterfaces.of([['lo', 1], ['eth0', 2], ['eth1', 3]]);
    const { follower, calls } = await follow(['eth+'], feed);
    expect(calls).toEqual(['attach eth0/2', 'attach eth1/3']);
    feed.set([['lo', 1], ['eth0', 2]]);
    await follower.settled();
    feed.set([['lo', 1], ['eth0', 2], ['eth1', 7]]);
    await follower.settled();
    expect(calls.slice(2)).toEqual(['detach eth1/3', 'attach eth1/7']);
    expect(follower.attached).toEqual([{ name: 'eth0', ifindex: 2 }, { name: 'eth1', ifindex: 7 }]);
    expect(follower.selection).toEqual({ devices: ['eth0', 'eth1'], missing: [] });
  });

  it('follows the default route from one interface to another', async () => {
    const feed = FakeInterfaces.of([['eth0', 2], ['eth1', 3]], { ipv4: ['eth0'], ipv6: [] });
    const { follower, calls } = await follow(undefined, feed);
    feed.set([['eth0', 2], ['eth1', 3]], { ipv4: ['eth1'], ipv6: [] });
    await follower.settled();
    expect(calls).toEqual(['attach eth0/2', 'detach eth0/2', 'attach eth1/3']);
  });

  it('keeps adopted devices that are still chosen and detaches the others, counting a vanished one as detached even if that fails', async () => {
    const feed = FakeInterfaces.of([['eth0', 2], ['eth1', 3]]);
    const attached = [{ name: 'eth0', ifindex: 2 }, { name: 'eth1', ifindex: 3 }, { name: 'gone0', ifindex: 9 }];
    const { follower, calls } = await follow(['eth0'], feed, { attached, failDetach: new Set(['gone0']) });
    expect(calls).toEqual(['detach eth1/3', 'detach gone0/9']);
    expect(follower.attached).toEqual([{ name: 'eth0', ifindex: 2 }]);
  });

  it('retries a failed attach, and a failed detach of a device that is still there, until they succeed', async () => {
    const feed = FakeInterfaces.of([['eth0', 2], ['eth1', 3]]);
    const failAttach = new Set(['eth1']);
    const a = await follow(['eth+'], feed, { failAttach });
    expect(a.follower.attached).toEqual([{ name: 'eth0', ifindex: 2 }]);
    failAttach.clear();
    await eventually(() => expect(a.follower.attached).toEqual([{ name: 'eth0', ifindex: 2 }, { name: 'eth1', ifindex: 3 }]), 5_000, 'attach retried');
    expect(a.calls.filter((c) => c === 'attach eth1/3').length).toBeGreaterThan(1);

    const failDetach = new Set(['eth0']);
    const b = await follow(['eth1'], feed, { attached: [{ name: 'eth0', ifindex: 2 }], failDetach });
    expect(b.follower.attached).toEqual([{ name: 'eth0', ifindex: 2 }, { name: 'eth1', ifindex: 3 }]);
    failDetach.clear();
    await eventually(() => expect(b.follower.attached).toEqual([{ name: 'eth1', ifindex: 3 }]), 5_000, 'detach retried');
    expect(b.calls.filter((c) => c === 'detach eth0/2').length).toBeGreaterThan(1);
  });

  it('stops calling back once closed, and detaches nothing on close', async () => {
    const feed = FakeInterfaces.of([['eth0', 2]]);
    const { follower, calls } = await follow(['eth0'], feed);
    await follower.close();
    feed.set([]);
    await follower.settled();
    expect(calls).toEqual(['attach eth0/2']);
  });
});

// The follower in a process inside the namespace, printing each callback as a JSON line.
const CHILD = `
import { DeviceFollower } from ${JSON.stringify(join(root, 'agent', 'devices.ts'))};
import { createLogger } from ${JSON.stringify(join(root, 'agent', 'log.ts'))};
const print = (event, name, ifindex) => console.log(JSON.stringify({ event, name, ifindex }));
await DeviceFollower.start({
  spec: process.argv[1] ? process.argv[1].split(',') : undefined,
  attach: (name, ifindex) => print('attach', name, ifindex),
  detach: (name, ifindex) => print('detach', name, ifindex),
  log: createLogger({ destination: process.stdout }),
  watch: { pollMs: 50, resyncMs: 300 },
});
print('ready');
setInterval(() => undefined, 1 << 30); // the watcher's timers are unref'd
`;

describe('DeviceFollower in a lab namespace', () => {
  let lab: Lab;
  let host: LabHost;

  beforeAll(async () => {
    lab = await Lab.create({ name: 'devices' });
    host = await lab.host('h');
    await lab.attach(host, await lab.bridge('lan'), { ifname: 'eth0', addresses: ['198.18.0.11/24'] });
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy({ graceMs: 500 }).catch(() => lab.destroySync());
  });

  const start = async (name: string, spec: string): Promise<LabProcess> => {
    const p = await host.spawn(name, process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD, spec], { cwd: root });
    await p.waitForLog('"event":"ready"', 60_000);
    return p;
  };
  const records = (p: LabProcess) => p.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const callbacks = (p: LabProcess) => records(p).filter((r) => r.event === 'attach' || r.event === 'detach').map((r) => `${String(r.event)} ${String(r.name)}/${String(r.ifindex)}`);
  const ifindex = async (name: string) => Number((await host.exec('cat', [`/sys/class/net/${name}/ifindex`])).stdout);
  const sh = async (...args: string[]) => {
    const r = await host.exec('ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  const addVeth = async () => {
    // Both ends stay in the host's namespace and go with it; the peer's name does not match ext+.
    await sh('link', 'add', 'ext1', 'type', 'veth', 'peer', 'name', 'peer1');
    await host.addAddress('ext1', '198.18.2.11/24');
    await sh('link', 'set', 'ext1', 'up');
    await sh('link', 'set', 'peer1', 'up');
    return ifindex('ext1');
  };

  it('attaches a veth matching ext+ when it appears, detaches it when deleted, and attaches it again when it returns', async () => {
    const p = await start('follower-named', 'eth0,ext+');
    const eth0 = await ifindex('eth0');
    expect(callbacks(p)).toEqual([`attach eth0/${eth0}`]);
    expect(records(p)).toContainEqual(expect.objectContaining({ device: 'ext+', reason: 'no_match' }));

    const first = await addVeth();
    await eventually(() => expect(callbacks(p)).toEqual([`attach eth0/${eth0}`, `attach ext1/${first}`]), 10_000, 'ext1 attached');
    await sh('link', 'del', 'ext1');
    await eventually(() => expect(callbacks(p).slice(2)).toEqual([`detach ext1/${first}`]), 10_000, 'ext1 detached');
    const second = await addVeth();
    expect(second).not.toBe(first);
    await eventually(() => expect(callbacks(p).slice(3)).toEqual([`attach ext1/${second}`]), 10_000, 'ext1 attached again');
    await sh('link', 'del', 'ext1');
    await eventually(() => expect(callbacks(p).slice(4)).toEqual([`detach ext1/${second}`]), 10_000, 'ext1 detached again');
    await p.stop();
  });

  it('follows the default route: attaches its interface when it is added, detaches it when it is removed', async () => {
    const p = await start('follower-default', '');
    expect(callbacks(p)).toEqual([]);
    expect(records(p)).toContainEqual(expect.objectContaining({ device: 'default route', reason: 'no_default_route' }));
    const eth0 = await ifindex('eth0');
    await host.addRoute('default', { via: '198.18.0.1' });
    await eventually(() => expect(callbacks(p)).toEqual([`attach eth0/${eth0}`]), 10_000, 'eth0 attached');
    await sh('route', 'del', 'default');
    await eventually(() => expect(callbacks(p)).toEqual([`attach eth0/${eth0}`, `detach eth0/${eth0}`]), 10_000, 'eth0 detached');
    await p.stop();
  });
});
