// ARP/NDP decoder fuzz run (`npx tsx bench/fuzz-l2.ts`, or `node dist/bench/fuzz-l2.js` after a
// build; `--count N` (default 1,000,000), `--seed S`, `--json` for the JSON line only). A long run,
// not a test: it exits non-zero only when a frame makes decodeFrame throw, yields a reason outside
// the catalogue, or an accepted frame fails to re-encode; never on speed.
//
// Frames are random bytes (10%), valid ARP / NS / NA / other frames with and without 802.1Q tags
// (15%), and valid frames put through one to three mutations (truncation, bit flips, interesting
// bytes, corrupted length fields, EtherType swaps, protocol fields set to values that trip one
// check, appended or randomised regions), half of them with the ICMPv6 checksum repaired so the
// checks behind it are reached (see l2announce/fuzz.ts). Printed: outcomes (accepted kind, 'other'
// reason, drop reason), frames per second for the whole harness, and decodeFrame alone over a
// pre-built corpus. The short run of the same harness is l2announce/fuzz.test.ts.
import { decodeFrame, fuzzCorpus, fuzzFrames } from '../l2announce/index.js';
import { fuzzArgs } from './fuzz-args.js';

const { count, seed, json, log, machine } = fuzzArgs('fuzz-l2');
const n = (value: number): string => value.toLocaleString('en');
log(`L2 codec fuzz: ${n(count)} frames, seed ${seed}, ${machine}`);

// 1. The harness: generate, mutate, decode, check the contract, re-encode what was accepted.
const started = performance.now();
let lastReport = started;
const report = fuzzFrames({
  frames: count,
  seed,
  onProgress: (done) => {
    const now = performance.now();
    if (now - lastReport > 5000) {
      lastReport = now;
      log(`  ${n(done)} frames, ${n(Math.round(done / ((now - started) / 1000)))}/s`);
    }
  },
});
const seconds = (performance.now() - started) / 1000;
const rate = Math.round(count / seconds);

// 2. decodeFrame alone, over a corpus built beforehand from the same generators.
const corpus = fuzzCorpus(Math.min(count, 100_000), seed + 1).map((c) => c.bytes);
for (const bytes of corpus) decodeFrame(bytes); // warm up
const decodeStarted = performance.now();
let accepted = 0;
for (let i = 0; i < count; i++) if (decodeFrame(corpus[i % corpus.length]!).ok) accepted++;
const decodeSeconds = (performance.now() - decodeStarted) / 1000;
const decodeRate = Math.round(count / decodeSeconds);

const table = (entries: Record<string, number>): string[] => {
  const sorted = Object.entries(entries).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const width = Math.max(...sorted.map(([k]) => k.length));
  return sorted.map(([k, v]) => `  ${k.padEnd(width)}  ${n(v).padStart(10)}  ${((100 * v) / count).toFixed(2).padStart(6)}%`);
};
log('');
log('outcomes (arp / ns / na: accepted; other:<reason>: well-formed, not ours; drop:<reason>: malformed):');
for (const line of table(report.outcomes)) log(line);
const byFamily: Record<string, number> = {};
for (const [generator, frames] of Object.entries(report.generators)) {
  // mutated:<base>:<first mutation>[+] is grouped by its first mutation.
  const parts = generator.replace(/\+$/, '').split(':');
  const family = parts[0] === 'mutated' ? `mutated:${parts[2]}` : generator;
  byFamily[family] = (byFamily[family] ?? 0) + frames;
}
log('');
log('generators:');
for (const line of table(byFamily)) log(line);
log('');
log(`harness: ${n(count)} frames in ${seconds.toFixed(1)} s, ${n(rate)} frames/s (generate + mutate + decode + check + re-encode)`);
log(`decodeFrame alone: ${n(count)} frames in ${decodeSeconds.toFixed(2)} s, ${n(decodeRate)} frames/s (${n(accepted)} accepted)`);
if (report.failureCount > 0) {
  console.error(`${n(report.failureCount)} failures; first ${report.failures.length}:`);
  for (const f of report.failures) console.error(`  ${f.kind} [${f.generator}] ${f.detail}\n    ${f.hex}`);
} else {
  log('no exception, every reason known, every accepted frame re-encodes');
}
if (json) {
  console.log(
    JSON.stringify({
      bench: 'fuzz-l2',
      seed,
      frames: count,
      seconds: Number(seconds.toFixed(2)),
      framesPerSecond: rate,
      decodeFramesPerSecond: decodeRate,
      failures: report.failureCount,
      outcomes: report.outcomes,
    }),
  );
}
process.exit(report.failureCount > 0 ? 1 : 0);
