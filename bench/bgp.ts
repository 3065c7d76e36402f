// BGP benchmark (`npx tsx bench/bgp.ts`): how long a fresh BIRD takes to hold N host routes from
// Beacon's speaker, against gobgpd originating the same N to the same BIRD in the same run, and
// the peak RSS of each sender. N = 10,000 and 100,000, IPv4 /32s and IPv6 /128s.
//
// The clock is BIRD's for both: from the moment BIRD marks the session Established to the import
// time of the last route (`timeformat ... iso long ms`). Each sender holds its routes before the
// session exists (BIRD's side starts disabled, is enabled once the sender is loaded), so the
// figure is session sync alone. Beacon's speaker runs in a child process of its own (the same
// driver the interop tests use), so its VmHWM is the speaker's; gobgpd's is read from /proc too.
// Both figures hold BIRD's own import work (about 10 ms for 10,000 routes once the UPDATEs have
// arrived, seen with tcpdump on the lab link); the rest is the sender's, Established to UPDATEs out.
//
// Environment: COUNTS (default "10000,100000"), FAMILIES (default "ipv4-unicast,ipv6-unicast").
import { Lab, type LabHost } from '../lab/index.js';
import { GobgpDaemon, PeerDaemon, SpeakerProcess, hostPrefixes, type Family } from '../test/bgp-peers.js';
import { eventually } from '../test/process.js';

const counts = (process.env.COUNTS ?? '10000,100000').split(',').map(Number);
const families = (process.env.FAMILIES ?? 'ipv4-unicast,ipv6-unicast').split(',') as Family[];
const router = { v4: '198.18.30.1', v6: '2001:db8:30::1', asn: 65001 };
const speaker = { v4: '198.18.30.2', v6: '2001:db8:30::2', asn: 65020 };
const SYNC_TIMEOUT_MS = 300_000;

interface Run {
  /** BIRD: Established → last route imported. */
  syncMs: number;
  /** Our clock: enabling BIRD's side → BIRD reports all N (includes connecting and polling). */
  wallMs: number;
  peakRssKiB: number;
}

const of = (family: Family, side: { v4: string; v6: string }) => (family === 'ipv4-unicast' ? side.v4 : side.v6);

async function measure(routerHost: LabHost, speakerHost: LabHost, sender: 'beacon' | 'gobgpd', family: Family, n: number, label: string): Promise<Run> {
  const senderAddress = of(family, speaker);
  const bird = await PeerDaemon.start('bird', routerHost, {
    localASN: router.asn,
    routerId: router.v4,
    localAddresses: [router.v4, router.v6],
    neighbours: [{ address: senderAddress, asn: speaker.asn, idle: true }],
  }, `bird-${label}`);
  let stopSender: () => Promise<void> = () => Promise.resolve();
  try {
    let peakRss: () => number;
    if (sender === 'beacon') {
      const beacon = await SpeakerProcess.start(speakerHost, { listen: { port: 179, addresses: [senderAddress] } }, `beacon-${label}`);
      stopSender = () => beacon.stop();
      await beacon.setPeers([{ name: 'router', peerAddress: of(family, router), peerASN: router.asn, localASN: speaker.asn, localAddress: senderAddress, routerId: speaker.v4, passive: true, families: [family] }]);
      await beacon.setHostRoutes('router', family, n);
      peakRss = () => beacon.peakRssKiB();
    } else {
      const gobgp: GobgpDaemon = await PeerDaemon.start('gobgp', speakerHost, {
        localASN: speaker.asn,
        routerId: speaker.v4,
        localAddresses: [speaker.v4, speaker.v6],
        neighbours: [{ address: of(family, router), asn: router.asn, passive: true, families: [family] }],
      }, `gobgp-${label}`);
      stopSender = () => gobgp.stop();
      await gobgp.originateMany(family, hostPrefixes(family, n));
      peakRss = () => gobgp.peakRssKiB();
    }
    const enabledAt = Date.now();
    await bird.enable(senderAddress);
    const doneAt = await eventually(async () => {
      const count = await bird.routeCount(senderAddress, family);
      if (count < n) throw new Error(`${count} of ${n}`);
      return Date.now();
    }, SYNC_TIMEOUT_MS, `BIRD holding ${n} routes from ${sender}`);
    const syncMs = (await bird.lastImport(senderAddress)) - (await bird.sessionSince(senderAddress));
    return { syncMs, wallMs: doneAt - enabledAt, peakRssKiB: peakRss() };
  } finally {
    await stopSender();
    await bird.stop();
  }
}

async function main(): Promise<void> {
  const lab = await Lab.create({ name: 'bench-bgp' });
  const results: object[] = [];
  try {
    const [routerHost, speakerHost] = [await lab.host('router'), await lab.host('speaker')];
    await lab.link(routerHost, speakerHost, { a: { addresses: [`${router.v4}/24`, `${router.v6}/64`] }, b: { addresses: [`${speaker.v4}/24`, `${speaker.v6}/64`] } });
    for (const family of families) {
      for (const n of counts) {
        const label = `${family === 'ipv4-unicast' ? 'v4' : 'v6'}-${n}`;
        const beacon = await measure(routerHost, speakerHost, 'beacon', family, n, `${label}-beacon`);
        const gobgpd = await measure(routerHost, speakerHost, 'gobgpd', family, n, `${label}-gobgpd`);
        const row = {
          family,
          routes: n,
          beacon: { syncMs: beacon.syncMs, wallMs: beacon.wallMs, peakRssMiB: +(beacon.peakRssKiB / 1024).toFixed(1) },
          gobgpd: { syncMs: gobgpd.syncMs, wallMs: gobgpd.wallMs, peakRssMiB: +(gobgpd.peakRssKiB / 1024).toFixed(1) },
          syncRatio: +(beacon.syncMs / Math.max(1, gobgpd.syncMs)).toFixed(2),
          rssRatio: +(beacon.peakRssKiB / gobgpd.peakRssKiB).toFixed(2),
        };
        results.push(row);
        console.log(
          `${family} ${n.toLocaleString('en')} routes: Beacon ${beacon.syncMs} ms (wall ${beacon.wallMs} ms, peak RSS ${row.beacon.peakRssMiB} MiB) | ` +
            `gobgpd ${gobgpd.syncMs} ms (wall ${gobgpd.wallMs} ms, peak RSS ${row.gobgpd.peakRssMiB} MiB) | Beacon/gobgpd time ${row.syncRatio}, RSS ${row.rssRatio}`,
        );
      }
    }
    console.log(JSON.stringify({ date: new Date().toISOString(), node: process.version, results }));
  } finally {
    await lab.destroy();
  }
}

await main();
