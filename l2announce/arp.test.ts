import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatIP, parseIP, type IP } from '../api/index.js';
import { buildARPReply, buildGratuitousARP, decodeARP, encodeARP, type ARPFrame, type ARPPacket } from './arp.js';
import { encodeEthernet, ETHERTYPE_ARP } from './ethernet.js';
import { decodeFrame } from './frame.js';
import { formatMAC, parseMAC } from './mac.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const ip = (text: string): IP => parseIP(text)!;
const mac1 = parseMAC('02:00:00:00:00:01')!;
const pad = (octets: number): string => '00'.repeat(octets);

/** Written by hand from RFC 826's layout: who has 198.18.0.10? tell 198.18.0.1 at 02:00:00:00:00:01. */
const requestFrame = [
  'ffffffffffff 020000000001 0806', // Ethernet: broadcast, from us, EtherType ARP
  '0001 0800 06 04 0001', //           htype Ethernet, ptype IPv4, hlen 6, plen 4, op request
  '020000000001 c6120001', //          sender: 02:00:00:00:00:01, 198.18.0.1
  '000000000000 c612000a', //          target: unknown, 198.18.0.10
  pad(18), //                          padding to 60 octets
].join('');

/** Captured from Linux 6.x: `ping 198.18.0.10` on a veth (02:00:00:00:00:02, 198.18.0.2); unpadded. */
const kernelRequest = 'ffffffffffff02000000000208060001080006040001020000000002c6120002000000000000c612000a';

function arpFrame(bytes: Uint8Array): ARPFrame {
  const result = decodeFrame(bytes);
  if (!result.ok || result.frame.kind !== 'arp') throw new Error(`not ARP: ${result.ok ? result.frame.kind : result.reason}`);
  return result.frame;
}

describe('ARP golden bytes', () => {
  it('encodes a request for 198.18.0.10 from 02:00:00:00:00:01', () => {
    const packet: ARPPacket = { op: 'request', senderMAC: mac1, senderIP: ip('198.18.0.1'), targetMAC: new Uint8Array(6), targetIP: ip('198.18.0.10') };
    const frame = encodeEthernet({ dst: parseMAC('ff:ff:ff:ff:ff:ff')!, src: mac1, ethertype: ETHERTYPE_ARP }, encodeARP(packet));
    expect(toHex(frame)).toBe(requestFrame.replace(/\s+/g, ''));
  });

  it('decodes the same request', () => {
    const { arp, ethernet } = arpFrame(hex(requestFrame));
    expect(ethernet.vlan).toBeUndefined();
    expect(arp.op).toBe('request');
    expect(formatMAC(arp.senderMAC)).toBe('02:00:00:00:00:01');
    expect(formatIP(arp.senderIP)).toBe('198.18.0.1');
    expect(formatMAC(arp.targetMAC)).toBe('00:00:00:00:00:00');
    expect(formatIP(arp.targetIP)).toBe('198.18.0.10');
  });

  it('decodes a kernel-sent request and answers it (RFC 826: swap, unicast to the requester)', () => {
    const request = arpFrame(hex(kernelRequest));
    expect(formatIP(request.arp.senderIP)).toBe('198.18.0.2');
    const reply = buildARPReply(request, mac1);
    expect(toHex(reply)).toBe(
      ['020000000002 020000000001 0806', '0001 0800 06 04 0002', '020000000001 c612000a', '020000000002 c6120002', pad(18)].join('').replace(/\s+/g, ''),
    );
  });

  it('answers on the VLAN the request came from, priority and all', () => {
    const tagged = hex(kernelRequest.slice(0, 24) + '8100a0c8' + kernelRequest.slice(24)); // PCP 5, VID 200
    const reply = buildARPReply(arpFrame(tagged), mac1);
    expect(toHex(reply.subarray(0, 20))).toBe('020000000002 020000000001 8100 a0c8 0806 0001'.replace(/\s+/g, ''));
    expect(reply.length).toBe(60);
    expect(arpFrame(reply).arp.op).toBe('reply');
  });

  it('builds gratuitous ARP request (target MAC zero, RFC 5227 §3) and reply (target MAC ours, RFC 5944 §4.6)', () => {
    const vip = ip('198.18.0.20');
    expect(toHex(buildGratuitousARP(mac1, vip, 'request'))).toBe(
      ['ffffffffffff 020000000001 0806', '0001 0800 06 04 0001', '020000000001 c6120014', '000000000000 c6120014', pad(18)].join('').replace(/\s+/g, ''),
    );
    expect(toHex(buildGratuitousARP(mac1, vip, 'reply'))).toBe(
      ['ffffffffffff 020000000001 0806', '0001 0800 06 04 0002', '020000000001 c6120014', '020000000001 c6120014', pad(18)].join('').replace(/\s+/g, ''),
    );
  });

  it('builds a tagged gratuitous ARP', () => {
    const frame = buildGratuitousARP(mac1, ip('198.18.0.20'), 'request', { pcp: 0, dei: false, vid: 100 });
    expect(toHex(frame.subarray(0, 18))).toBe('ffffffffffff 020000000001 8100 0064 0806'.replace(/\s+/g, ''));
    expect(arpFrame(frame).ethernet.vlan).toEqual({ pcp: 0, dei: false, vid: 100 });
  });
});

describe('decodeARP drops', () => {
  const body = hex(requestFrame).subarray(14, 42);
  const patched = (offset: number, ...octets: number[]): Uint8Array => {
    const copy = body.slice();
    copy.set(octets, offset);
    return copy;
  };

  it.each([
    ['truncated_arp', body.subarray(0, 7)],
    ['truncated_arp', body.subarray(0, 27)],
    ['arp_bad_hardware_type', patched(0, 0x00, 0x06)], // IEEE 802
    ['arp_bad_protocol_type', patched(2, 0x86, 0xdd)],
    ['arp_bad_lengths', patched(4, 8)],
    ['arp_bad_lengths', patched(5, 16)],
    ['arp_bad_opcode', patched(6, 0x00, 0x03)], // RARP request
    ['arp_bad_opcode', patched(6, 0x00, 0x00)],
  ])('%s', (reason, bytes) => {
    expect(decodeARP(bytes)).toEqual({ ok: false, reason });
  });

  it('ignores trailing Ethernet padding', () => {
    expect(decodeARP(hex(requestFrame).subarray(14)).ok).toBe(true);
  });
});

describe('ARP properties', () => {
  const mac = fc.uint8Array({ minLength: 6, maxLength: 6 });
  const v4 = fc.integer({ min: 0, max: 0x1_ffff }).map((n): IP => ({ family: 4, value: 0xc6120000n + BigInt(n) }));

  it('decode(encode(p)) is p for random fields', () => {
    fc.assert(
      fc.property(fc.constantFrom('request' as const, 'reply' as const), mac, v4, mac, v4, (op, senderMAC, senderIP, targetMAC, targetIP) => {
        const packet: ARPPacket = { op, senderMAC, senderIP, targetMAC, targetIP };
        expect(decodeARP(encodeARP(packet))).toEqual({ ok: true, frame: packet });
      }),
    );
  });

  it('encodeARP refuses IPv6 addresses and short MACs', () => {
    const packet: ARPPacket = { op: 'request', senderMAC: mac1, senderIP: ip('2001:db8::1'), targetMAC: mac1, targetIP: ip('198.18.0.1') };
    expect(() => encodeARP(packet)).toThrow(RangeError);
    expect(() => encodeARP({ ...packet, senderIP: ip('198.18.0.1'), targetMAC: new Uint8Array(4) })).toThrow(RangeError);
    expect(() => buildGratuitousARP(mac1, ip('2001:db8::1'), 'request')).toThrow(RangeError);
  });
});
