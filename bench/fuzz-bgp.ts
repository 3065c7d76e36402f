// BGP codec fuzz run (`npx tsx bench/fuzz-bgp.ts`, or `node dist/bench/fuzz-bgp.js` after a build;
// `--count N` (default 1,000,000), `--seed S`, `--json` for the JSON line only). A long run, not a
// test: it exits non-zero only when a message crashes the codec or fails a check, never on speed.
//
// Each message is a valid seed (OPEN, UPDATE over 2- and 4-octet sessions, NOTIFICATION,
// KEEPALIVE, ROUTE-REFRESH, End-of-RIB), a mutated seed (truncation, bit flips, interesting bytes,
// length-field corruption, attribute shuffles / duplicates / insertions, byte insertion and
// deletion, random bodies, splices, random types) or random bytes. It goes through the framer in
// one to three chunks and every frame through its decoder; accepted UPDATEs and OPENs are
// re-encoded and decoded again (see bgp/fuzz.ts). Printed: outcomes by decision, refusal reasons
// and messages per second. The short run of the same harness is bgp/fuzz.test.ts.
import { runFuzz } from '../bgp/fuzz.js';
import { fuzzArgs } from './fuzz-args.js';

const { count, seed, json, log, machine } = fuzzArgs('fuzz-bgp');
log(`BGP codec fuzz: ${count.toLocaleString('en')} messages, seed ${seed}, ${machine}`);

const started = performance.now();
let lastReport = started;
let report;
try {
  report = runFuzz(count, seed, (done) => {
    const now = performance.now();
    if (now - lastReport > 5000) {
      lastReport = now;
      log(`  ${done.toLocaleString('en')} messages, ${Math.round(done / ((now - started) / 1000)).toLocaleString('en')}/s`);
    }
  });
} catch (error) {
  console.error(String(error instanceof Error ? error.message : error));
  process.exit(1);
}
const seconds = (performance.now() - started) / 1000;
const rate = Math.round(report.messages / seconds);

const table = (entries: Record<string, number>): string[] => {
  const sorted = Object.entries(entries).sort((a, b) => b[1] - a[1]);
  const width = Math.max(...sorted.map(([k]) => k.length));
  return sorted.map(([k, v]) => `  ${k.padEnd(width)}  ${v.toLocaleString('en').padStart(10)}  ${((100 * v) / report.decisions).toFixed(2).padStart(6)}%`);
};
log('');
log(`outcomes (${report.decisions.toLocaleString('en')} decisions from ${report.messages.toLocaleString('en')} messages):`);
for (const line of table(report.counts)) log(line);
log('');
log('refusal reasons (UPDATE: RFC 7606 decision reasons, incl. each discarded attribute; OPEN: error reasons):');
for (const line of table(report.reasons)) log(line);
log('');
log(`${report.messages.toLocaleString('en')} messages in ${seconds.toFixed(1)} s: ${rate.toLocaleString('en')} messages/s, no crash`);
if (json) {
  console.log(JSON.stringify({ bench: 'fuzz-bgp', seed, messages: report.messages, decisions: report.decisions, seconds: Number(seconds.toFixed(2)), messagesPerSecond: rate, counts: report.counts, reasons: report.reasons }));
}
