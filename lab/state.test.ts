import { describe, expect, it } from 'vitest';
import { judgeOwner, parseProcStat, parseRunState, runIdOfStateFile, serializeRunState, stateFilePath, type RunState } from './state.js';

const state: RunState = {
  version: 1,
  runId: 'bl-00aa11',
  name: 'test',
  owner: { pid: 4242, startTicks: 987654 },
  startedAt: '2026-01-01T00:00:00.000Z',
  namespaces: ['bl-00aa11-node1', 'bl-00aa11-switch'],
  logDir: '/tmp/beacon-lab/bl-00aa11',
  keepLogs: false,
};
const withField = (patch: Record<string, unknown>) => JSON.stringify({ ...state, ...patch });

describe('run state file', () => {
  it('round-trips', () => {
    expect(parseRunState(serializeRunState(state))).toEqual(state);
    expect(parseRunState(withField({ owner: { pid: 4242 } })).owner).toEqual({ pid: 4242 });
  });

  it('lives at STATEDIR/RUNID.json, and other files in the folder are not runs', () => {
    expect(stateFilePath('/run/beacon-lab', 'bl-00aa11')).toBe('/run/beacon-lab/bl-00aa11.json');
    expect(runIdOfStateFile('bl-00aa11.json')).toBe('bl-00aa11');
    expect(runIdOfStateFile('bl-00aa11.json.tmp')).toBeUndefined();
    expect(runIdOfStateFile('notes.json')).toBeUndefined();
  });

  it('refuses a file that would make the sweeper delete what is not the run\'s', () => {
    expect(() => parseRunState(withField({ namespaces: ['bl-00aa11-a', 'prod-ns'] }))).toThrow(/namespace "prod-ns" does not belong to run bl-00aa11/);
    expect(() => parseRunState(withField({ namespaces: ['bl-ffffff-a'] }))).toThrow(/does not belong/);
    expect(() => parseRunState(withField({ logDir: '/' }))).toThrow(/logDir/);
    expect(() => parseRunState(withField({ logDir: '/home/user' }))).toThrow(/ending in \/bl-00aa11/);
    expect(() => parseRunState(withField({ logDir: 'tmp/bl-00aa11' }))).toThrow(/absolute/);
  });

  it('refuses broken or foreign files with the reason', () => {
    expect(() => parseRunState('{')).toThrow(/not JSON/);
    expect(() => parseRunState('[]')).toThrow(/not a JSON object/);
    expect(() => parseRunState(withField({ version: 2 }))).toThrow(/unsupported version 2/);
    expect(() => parseRunState(withField({ runId: 'x' }))).toThrow(/not a lab run id/);
    expect(() => parseRunState(withField({ owner: { pid: 0 } }))).toThrow(/owner.pid/);
    expect(() => parseRunState(withField({ owner: { pid: 1, startTicks: -1 } }))).toThrow(/startTicks/);
    expect(() => parseRunState(withField({ startedAt: 'yesterday' }))).toThrow(/startedAt/);
    expect(() => parseRunState(withField({ keepLogs: 'no' }))).toThrow(/keepLogs/);
  });
});

describe('owner liveness', () => {
  const stat = (state: string, start: number, comm = 'node') => `4242 (${comm}) ${state} 1 4242 4242 0 -1 4194560 100 0 0 0 5 1 0 0 20 0 11 0 ${start} 1000000 5000 18446744073709551615`;

  it('reads state and start time, also when the command name holds spaces and parentheses', () => {
    expect(parseProcStat(stat('S', 987654))).toEqual({ state: 'S', startTicks: 987654 });
    expect(parseProcStat(stat('R', 5, 'a) b (c'))).toEqual({ state: 'R', startTicks: 5 });
    expect(parseProcStat('garbage')).toBeUndefined();
    expect(parseProcStat('1 (x) S 1 2')).toBeUndefined();
  });

  it('protects a run only while the same owner process runs', () => {
    const owner = { pid: 4242, startTicks: 987654 };
    expect(judgeOwner(owner, stat('S', 987654))).toBe('owner_alive');
    expect(judgeOwner(owner, undefined)).toBe('owner_gone');
    expect(judgeOwner(owner, stat('Z', 987654))).toBe('owner_zombie');
    expect(judgeOwner(owner, stat('S', 111))).toBe('owner_pid_reused');
    // Without a recorded start time, any process with that pid counts as the owner.
    expect(judgeOwner({ pid: 4242 }, stat('S', 111))).toBe('owner_alive');
    // An unreadable stat of a pid that exists: stay safe.
    expect(judgeOwner(owner, 'garbage')).toBe('owner_alive');
  });
  it('keeps mounts and cgroups only inside the run: clean-up unmounts and removes them as root', () => {
    const mounts = ['/tmp/beacon-lab/bl-00aa11/mnt/bpf', '/tmp/beacon-lab/bl-00aa11/mnt/cgroup'];
    const cgroups = ['/tmp/beacon-lab/bl-00aa11/mnt/cgroup/bl-00aa11-node-1'];
    expect(parseRunState(withField({ mounts, cgroups, kept: true }))).toEqual({ ...state, mounts, cgroups, kept: true });
    expect(() => parseRunState(withField({ mounts: ['/sys/fs/cgroup'] }))).toThrow(/mounts: "\/sys\/fs\/cgroup" must be an absolute path under \/tmp\/beacon-lab\/bl-00aa11/);
    expect(() => parseRunState(withField({ mounts: ['/tmp/beacon-lab/bl-00aa11/../../etc'] }))).toThrow(/mounts/);
    expect(() => parseRunState(withField({ mounts, cgroups: ['/sys/fs/cgroup/system.slice'] }))).toThrow(/cgroups: .* inside a mount of the run/);
    expect(() => parseRunState(withField({ cgroups }))).toThrow(/cgroups/);
    expect(() => parseRunState(withField({ kept: 'yes' }))).toThrow(/kept must be true or false/);
  });
});
