import { describe, expect, it } from 'vitest';
import { parseLabCidr } from './addresses.js';
import * as cmd from './commands.js';

const run = 'bl-00aa11';
const a = `${run}-a`;
const b = `${run}-b`;
const sw = `${run}-switch`;

describe('lab commands', () => {
  const all: cmd.Argv[] = [
    cmd.addNamespace(a),
    cmd.deleteNamespace(a),
    cmd.namespacePids(a),
    cmd.execIn(a, 'ping', ['-c1', '198.18.0.1']),
    ...cmd.setUpNamespace(a, { forwarding: true }),
    ...cmd.setUpNamespace(sw, { isSwitch: true }),
    ...cmd.addBridge(sw, 'lan'),
    cmd.addVeth(a, 'eth0', sw, 'port1'),
    cmd.addVeth(a, 'eth1', b, 'eth0'),
    cmd.setMaster(sw, 'port1', 'lan'),
    cmd.setLink(a, 'eth0', 'down'),
    cmd.addAddress(a, 'eth0', parseLabCidr('198.18.0.1/24')),
    cmd.addAddress(a, 'eth0', parseLabCidr('2001:db8::1/64')),
    cmd.addRoute(a, { family: 6, destination: 'default', via: '2001:db8::ff' }),
  ];

  it('every command acts inside a namespace of the run, never in the root namespace', () => {
    for (const argv of all) {
      expect(cmd.namespacesOf(argv).length, argv.join(' ')).toBeGreaterThan(0);
      expect(() => cmd.assertInRun(argv, run)).not.toThrow();
    }
  });

  it('refuses commands for the root namespace or another run', () => {
    expect(() => cmd.assertInRun(['ip', 'link', 'add', 'x', 'type', 'dummy'], run)).toThrow(/refusing command outside run bl-00aa11/);
    expect(() => cmd.assertInRun(['ip', '-n', 'bl-ffffff-a', 'link', 'del', 'eth0'], run)).toThrow(/refusing/);
    // A veth whose peer would land in a foreign namespace.
    expect(() => cmd.assertInRun(cmd.addVeth(a, 'eth0', 'prod', 'x'), run)).toThrow(/refusing/);
    expect(() => cmd.assertInRun(['sh', '-c', 'ip link'], run)).toThrow(/refusing/);
  });

  it('creates veth pairs from inside a namespace with the peer moved straight into the other', () => {
    expect(cmd.addVeth(a, 'eth0', sw, 'port1')).toEqual(['ip', '-n', a, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'port1', 'netns', sw]);
    expect(cmd.namespacesOf(cmd.addVeth(a, 'eth0', sw, 'port1'))).toEqual([a, sw]);
  });

  it('turns off DAD before any interface exists, and brings lo up', () => {
    const [sysctl, lo] = cmd.setUpNamespace(a);
    expect(sysctl).toEqual(['ip', 'netns', 'exec', a, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    expect(lo).toEqual(['ip', '-n', a, 'link', 'set', 'lo', 'up']);
    expect(cmd.setUpNamespace(a, { forwarding: true })[0]).toContain('net.ipv4.ip_forward=1');
  });

  it('adds IPv6 addresses with nodad, and routes per family', () => {
    expect(cmd.addAddress(a, 'eth0', parseLabCidr('2001:db8::1/64'))).toEqual(['ip', '-n', a, '-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'eth0', 'nodad']);
    expect(cmd.addAddress(a, 'eth0', parseLabCidr('198.18.0.1/24'))).toEqual(['ip', '-n', a, '-4', 'addr', 'add', '198.18.0.1/24', 'dev', 'eth0']);
    expect(cmd.addRoute(a, { family: 4, destination: '198.19.0.0/24', via: '198.18.0.254' })).toEqual(['ip', '-n', a, '-4', 'route', 'add', '198.19.0.0/24', 'via', '198.18.0.254']);
    expect(cmd.addRoute(a, { family: 4, destination: '198.19.0.0/24', dev: 'eth1' })).toEqual(['ip', '-n', a, '-4', 'route', 'add', '198.19.0.0/24', 'dev', 'eth1']);
  });

  it('makes bridges that forward at once', () => {
    expect(cmd.addBridge(sw, 'lan')[0]).toEqual(['ip', '-n', sw, 'link', 'add', 'lan', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0', 'mcast_snooping', '0']);
  });
});

describe('link settling', () => {
  const show = (operstate: string, flags: string[], port?: string) =>
    JSON.stringify([{ ifname: 'x', operstate, flags, ...(port ? { linkinfo: { info_kind: 'veth', info_slave_kind: 'bridge', info_slave_data: { state: port } } } : {}) }]);

  it('reads operstate, carrier and the bridge port state', () => {
    expect(cmd.parseLinkState(show('UP', ['BROADCAST', 'UP', 'LOWER_UP']))).toEqual({ operstate: 'UP', carrier: true });
    expect(cmd.parseLinkState(show('UP', ['UP', 'LOWER_UP'], 'forwarding'))).toEqual({ operstate: 'UP', carrier: true, bridgePortState: 'forwarding' });
    expect(cmd.parseLinkState('[]')).toBeUndefined();
    expect(cmd.parseLinkState('not json')).toBeUndefined();
  });

  it('waits out the gap between carrier and linkwatch, but not a peer that is down', () => {
    const settled = (json: string) => cmd.linkSettled(cmd.parseLinkState(json)!);
    // Carrier on, linkwatch not run yet: packets would be dropped.
    expect(settled(show('DOWN', ['NO-CARRIER', 'UP', 'LOWER_UP']))).toBe(false);
    expect(settled(show('UP', ['UP', 'LOWER_UP'], 'disabled'))).toBe(false);
    expect(settled(show('UP', ['UP', 'LOWER_UP'], 'forwarding'))).toBe(true);
    expect(settled(show('UP', ['UP', 'LOWER_UP']))).toBe(true);
    // Peer down: nothing to wait for.
    expect(settled(show('DOWN', ['NO-CARRIER', 'UP']))).toBe(true);
  });
});
