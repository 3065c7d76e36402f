import { describe, expect, it } from 'vitest';
import {
  IPVS_DUMMY, NFT_TABLE, chainHash, ipv4, iptablesChange, iptablesEndpointChain, iptablesRuleset, iptablesServiceChain, iptablesServiceRule, ipvsChange,
  ipvsDummyAddresses, ipvsRestoreText, nftChange, nftEndpointChain, nftRuleset, nftServiceChain, parseChildrenCpuSeconds, parseWrk, type BenchService,
} from './kpr-peers.js';

const service = (i: number, backends = ['198.18.1.2', '198.18.2.2']): BenchService => ({
  namespace: 'bench', name: `svc-${i}`, portName: 'http', address: ipv4(((198 << 24) | (19 << 16)) + i), port: 80, targetPort: 8080, backends,
});
const a = service(0);
const b = service(1);
const moved = service(1, ['198.18.1.2', '198.18.3.9']);

/** The -A lines of a chain, in order. */
const rulesOf = (text: string, chain: string): string[] => text.split('\n').filter((l) => l.startsWith(`-A ${chain} `));

describe('chainHash', () => {
  it('is the base32 (RFC 4648) SHA-256 prefix kube-proxy uses', () => {
    // Reference values from Python's base64.b32encode(hashlib.sha256(text).digest()).
    expect(chainHash('', 16)).toBe('4OYMIQUY7QOBJGX3');
    expect(chainHash('bench-0/svc-0:http/tcp', 16)).toBe('D7RGYCEKPMZEVLAZ');
    expect(chainHash('bench-0/svc-0:http/tcp', 8)).toBe('D7RGYCEK');
  });
});

describe('iptables (kube-proxy iptables mode)', () => {
  const { text, rules } = iptablesRuleset([a, b]);

  it('scans KUBE-SERVICES in service order, picks endpoints with even probability and DNATs', () => {
    expect(text.startsWith('*nat\n') && text.endsWith('COMMIT\n')).toBe(true);
    expect(rulesOf(text, 'PREROUTING')).toEqual(['-A PREROUTING -j KUBE-SERVICES']);
    expect(rulesOf(text, 'KUBE-SERVICES')).toEqual([iptablesServiceRule(a), iptablesServiceRule(b)]);
    expect(iptablesServiceRule(b)).toContain(`-d 198.19.0.1/32 --dport 80 -j ${iptablesServiceChain(b)}`);
    expect(rulesOf(text, iptablesServiceChain(b))).toEqual([
      `-A ${iptablesServiceChain(b)} -m statistic --mode random --probability 0.5000000000 -j ${iptablesEndpointChain(b, '198.18.1.2')}`,
      `-A ${iptablesServiceChain(b)} -j ${iptablesEndpointChain(b, '198.18.2.2')}`,
    ]);
    expect(rulesOf(text, iptablesEndpointChain(b, '198.18.2.2'))).toEqual([
      `-A ${iptablesEndpointChain(b, '198.18.2.2')} -s 198.18.2.2/32 -j KUBE-MARK-MASQ`,
      `-A ${iptablesEndpointChain(b, '198.18.2.2')} -m tcp -p tcp -j DNAT --to-destination 198.18.2.2:8080`,
    ]);
    // 3 fixed rules, 1 per service in KUBE-SERVICES, 2 per service chain, 2 per endpoint chain.
    expect(rules).toBe(3 + 2 * (1 + 2 + 2 * 2));
  });

  it('declares every chain it jumps to, and names are unique per service and endpoint', () => {
    const declared = new Set(text.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]));
    const targets = [...text.matchAll(/-j (KUBE-[A-Z0-9-]+)/g)].map((m) => m[1]);
    expect(targets.filter((t) => !declared.has(t))).toEqual([]);
    expect(declared.size).toBe(2 + 2 * 3);
  });

  it('changes one service: its chains rewritten, the endpoint that went away deleted; kube-proxy form also rewrites KUBE-SERVICES', () => {
    const gone = iptablesEndpointChain(b, '198.18.2.2');
    const chainsOnly = iptablesChange(b, moved);
    const lines = chainsOnly.split('\n');
    expect(lines).toContain(`:${iptablesEndpointChain(moved, '198.18.3.9')} - [0:0]`);
    expect(rulesOf(chainsOnly, iptablesServiceChain(b))).toHaveLength(2);
    expect(lines.indexOf(`:${gone} - [0:0]`)).toBeLessThan(lines.indexOf(`-X ${gone}`));
    expect(chainsOnly).not.toContain('KUBE-SERVICES');

    const kubeProxy = iptablesChange(b, moved, [a, b].map(iptablesServiceRule));
    expect(kubeProxy.split('\n')).toContain(':KUBE-SERVICES - [0:0]');
    expect(rulesOf(kubeProxy, 'KUBE-SERVICES')).toEqual([iptablesServiceRule(a), iptablesServiceRule(b)]);
  });
});

describe('nftables (kube-proxy nftables mode)', () => {
  it('maps (address . protocol . port) to per-service chains that pick an endpoint with numgen', () => {
    const text = nftRuleset([a, b]);
    const lines = text.split('\n');
    expect(lines).toContain(`add map ${NFT_TABLE} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }`);
    expect(lines).toContain(`add rule ${NFT_TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips`);
    expect(lines).toContain(
      `add rule ${NFT_TABLE} ${nftServiceChain(b)} numgen random mod 2 vmap { 0 : goto ${nftEndpointChain(b, '198.18.1.2')}, 1 : goto ${nftEndpointChain(b, '198.18.2.2')} }`,
    );
    expect(lines).toContain(`add rule ${NFT_TABLE} ${nftEndpointChain(b, '198.18.2.2')} meta l4proto tcp dnat to 198.18.2.2:8080`);
    expect(lines.filter((l) => l.startsWith('add element'))).toEqual([
      `add element ${NFT_TABLE} service-ips { 198.19.0.0 . tcp . 80 : goto ${nftServiceChain(a)}, 198.19.0.1 . tcp . 80 : goto ${nftServiceChain(b)} }`,
    ]);
    expect(nftServiceChain(b)).toMatch(/^service-[A-Z2-7]{8}-bench\/svc-1\/tcp\/http$/);
  });

  it('adds every chain before a rule or element refers to it, and batches map elements', () => {
    const services = Array.from({ length: 1001 }, (_, i) => service(i));
    const lines = nftRuleset(services).trim().split('\n');
    const added = new Set<string>();
    for (const line of lines) {
      const chain = /^add chain \S+ \S+ (\S+)/.exec(line)?.[1];
      if (chain) added.add(chain);
      for (const m of line.matchAll(/(?:goto|jump) ([^\s,]+)/g)) expect(added.has(m[1]!), line).toBe(true);
    }
    expect(lines.filter((l) => l.startsWith('add element'))).toHaveLength(2);
  });

  it('changes one service in one transaction: new endpoint chain, pick rule rewritten, old endpoint chain emptied then deleted', () => {
    const lines = nftChange(b, moved).trim().split('\n');
    const gone = nftEndpointChain(b, '198.18.2.2');
    expect(lines[0]).toBe(`add chain ${NFT_TABLE} ${nftEndpointChain(moved, '198.18.3.9')}`);
    expect(lines.indexOf(`flush chain ${NFT_TABLE} ${nftServiceChain(b)}`)).toBeLessThan(lines.indexOf(`delete chain ${NFT_TABLE} ${gone}`));
    expect(lines.slice(-2)).toEqual([`flush chain ${NFT_TABLE} ${gone}`, `delete chain ${NFT_TABLE} ${gone}`]);
    expect(lines.filter((l) => l.includes(nftEndpointChain(b, '198.18.1.2')))).toHaveLength(1);
  });
});

describe('IPVS (kube-proxy ipvs mode)', () => {
  it('writes a virtual server per service with NAT-mode real servers, and its addresses for the dummy interface', () => {
    expect(ipvsRestoreText([a])).toBe('-A -t 198.19.0.0:80 -s rr\n-a -t 198.19.0.0:80 -r 198.18.1.2:8080 -m -w 1\n-a -t 198.19.0.0:80 -r 198.18.2.2:8080 -m -w 1\n');
    expect(ipvsChange(b, moved)).toBe('-a -t 198.19.0.1:80 -r 198.18.3.9:8080 -m -w 1\n-d -t 198.19.0.1:80 -r 198.18.2.2:8080\n');
    expect(ipvsDummyAddresses([a, b, { ...b, port: 81 }])).toBe(`address add 198.19.0.0/32 dev ${IPVS_DUMMY}\naddress add 198.19.0.1/32 dev ${IPVS_DUMMY}\n`);
  });
});

describe('load generator output', () => {
  const wrk = `Running 3s test @ http://198.19.0.0:80/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.34us  150.20us   8.01ms   90.12%
    Req/Sec     9.80k   512.00    10.50k    70.00%
  Latency Distribution
     50%  390.00us
     75%  450.00us
     90%  520.00us
     99%    1.20ms
  29400 requests in 3.00s, 2.38MB read
  Socket errors: connect 2, read 1, write 0, timeout 0
  Non-2xx or 3xx responses: 3
Requests/sec:   9799.50
Transfer/sec:    812.29KB
`;

  it('reads rate, percentiles and errors from wrk --latency', () => {
    expect(parseWrk(wrk)).toEqual({ requests: 29400, seconds: 3, requestsPerSecond: 9799.5, latencyUs: { p50: 390, p99: 1200 }, errors: 6 });
    expect(parseWrk(wrk.replace(/\s*Socket errors.*\n\s*Non-2xx.*\n/, '\n')).errors).toBe(0);
  });

  it('refuses output without the figures (wrk failed)', () => {
    expect(() => parseWrk('unable to connect to 198.19.0.0:80 Connection refused\n')).toThrow(/no request count/);
  });

  it("reads the children's CPU time from the shell's times (bash and dash formats)", () => {
    expect(parseChildrenCpuSeconds('0m0.003s 0m0.001s\n0m1.250s 1m2.500s\n')).toBeCloseTo(63.75, 6);
    expect(parseChildrenCpuSeconds('0m0.000000s 0m0.000000s\n0m0.410000s 0m0.920000s\n')).toBeCloseTo(1.33, 6);
    expect(() => parseChildrenCpuSeconds('nonsense')).toThrow();
  });
});
