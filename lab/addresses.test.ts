import { describe, expect, it } from 'vitest';
import { checkLabIp, parseLabCidr } from './addresses.js';

describe('lab addresses', () => {
  it('accepts addresses and subnets inside 198.18.0.0/15, 2001:db8::/32 and loopback', () => {
    expect(parseLabCidr('198.18.0.11/24')).toEqual({ family: 4, address: '198.18.0.11', prefix: 24, text: '198.18.0.11/24' });
    expect(parseLabCidr('198.19.255.255/32').family).toBe(4);
    expect(parseLabCidr('198.18.0.0/15').prefix).toBe(15);
    expect(parseLabCidr('2001:db8::11/64')).toEqual({ family: 6, address: '2001:db8::11', prefix: 64, text: '2001:db8::11/64' });
    expect(parseLabCidr('2001:db8:ffff::1/128').family).toBe(6);
    expect(parseLabCidr('127.0.0.2/8').family).toBe(4);
    expect(parseLabCidr('::1/128').family).toBe(6);
    expect(checkLabIp('198.18.1.1')).toBe(4);
    expect(checkLabIp('2001:db8::1')).toBe(6);
  });

  it('refuses addresses that real networks use, with a clear error', () => {
    for (const bad of ['203.0.113.1/24', '192.0.2.1/24', '198.17.255.255/32', '198.20.0.0/16', '8.8.8.8/32', '2001:db9::1/64', 'fe80::1/64', '::ffff:198.18.0.1/128', '::2/128']) {
      expect(() => parseLabCidr(bad), bad).toThrow(/outside the lab ranges \(allowed: 198\.18\.0\.0\/15, 2001:db8::\/32/);
    }
    expect(() => checkLabIp('192.0.2.1')).toThrow(/outside the lab ranges/);
    expect(() => checkLabIp('fe80::1%eth0')).toThrow(/not an IPv4 or IPv6 address/);
  });

  it('refuses a subnet that reaches beyond the lab range even when the address is inside', () => {
    expect(() => parseLabCidr('198.18.0.1/14')).toThrow(/reaches outside 198\.18\.0\.0\/15/);
    expect(() => parseLabCidr('2001:db8::1/16')).toThrow(/reaches outside 2001:db8::\/32/);
    expect(() => parseLabCidr('::1/64')).toThrow(/reaches outside ::1\/128/);
  });

  it('refuses malformed input', () => {
    expect(() => parseLabCidr('198.18.0.1')).toThrow(/needs a prefix length/);
    expect(() => parseLabCidr('198.18.0.1/33')).toThrow(/prefix length must be 0-32/);
    expect(() => parseLabCidr('2001:db8::1/129')).toThrow(/prefix length must be 0-128/);
    expect(() => parseLabCidr('198.18.0.1/024')).toThrow(/prefix length/);
    expect(() => parseLabCidr('198.18.0.1/')).toThrow(/prefix length/);
    expect(() => parseLabCidr('node1/24')).toThrow(/not an IPv4 or IPv6 address/);
    expect(() => checkLabIp('198.18.0.1/24')).toThrow(/not an IPv4 or IPv6 address/);
  });
});
