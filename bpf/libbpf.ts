// The one place that loads libbpf (the system's libbpf.so.1, 1.1) and libc through koffi.
// libbpf 1.x reports failures as a negative errno from int-returning calls and as NULL plus
// errno from pointer-returning ones; both become a BpfError naming the call and the errno.
// Option structs are plain Buffers at the offsets of /usr/include/bpf/{bpf,libbpf}.h (x86-64),
// each starting with `size_t sz`, with pointers written as raw addresses (koffi.address).

import { constants as osConstants } from 'node:os';
import koffi from 'koffi';

/** An opaque libbpf object pointer (struct bpf_object *, bpf_map *, bpf_program *, bpf_link *). */
export type Pointer = { readonly __pointer: unique symbol };

// enum bpf_map_type, enum bpf_prog_type, enum bpf_func_id (include/uapi/linux/bpf.h).
export const MapType = {
  HASH: 1, ARRAY: 2, PERCPU_HASH: 5, PERCPU_ARRAY: 6, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12, HASH_OF_MAPS: 13,
} as const;
export const ProgType = { SCHED_CLS: 3, CGROUP_SOCK_ADDR: 18 } as const;
export const Helper = { ktime_get_ns: 5, get_prandom_u32: 7, get_socket_cookie: 46, get_netns_cookie: 122, set_retval: 187 } as const;
/** Flags of bpf_map_update_elem: create or replace, create only, replace only. */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

// ENOTSUPP (524) is kernel-internal but leaks to user space from some map operations.
const ENOTSUPP = 524;
const errnoNames = new Map<number, string>([...Object.entries(osConstants.errno).map(([name, n]) => [n, name] as const), [ENOTSUPP, 'ENOTSUPP']]);
export const errnoName = (errno: number): string => errnoNames.get(errno) ?? `errno ${errno}`;
export const Errno = { ...osConstants.errno, ENOTSUPP };

export class BpfError extends Error {
  override name = 'BpfError';
  constructor(
    readonly operation: string,
    readonly errno: number,
    /** libbpf's messages during the call: for a program load, the verifier log. */
    readonly log = '',
  ) {
    super(`${operation} failed: ${errnoName(errno)}${log ? `\n${log}` : ''}`);
  }
}

export interface Libbpf {
  bpf_map_create(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, next: Buffer): number;
  bpf_map_lookup_batch(fd: number, inBatch: Buffer | null, outBatch: Buffer, keys: Buffer, values: Buffer, count: Uint32Array, opts: Buffer): number;
  bpf_map_update_batch(fd: number, keys: Buffer, values: Buffer, count: Uint32Array, opts: Buffer): number;
  bpf_map_delete_batch(fd: number, keys: Buffer, count: Uint32Array, opts: Buffer): number;
  bpf_obj_get(path: string): number;
  bpf_map_get_fd_by_id(id: number): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, length: Uint32Array): number;
  bpf_prog_test_run_opts(fd: number, opts: Buffer): number;
  bpf_object__open_file(path: string, opts: Buffer): Pointer | null;
  bpf_object__load(obj: Pointer): number;
  bpf_object__close(obj: Pointer): void;
  bpf_object__next_map(obj: Pointer, prev: Pointer | null): Pointer | null;
  bpf_object__next_program(obj: Pointer, prev: Pointer | null): Pointer | null;
  bpf_map__name(map: Pointer): string;
  bpf_map__fd(map: Pointer): number;
  bpf_map__set_max_entries(map: Pointer, n: number): number;
  bpf_map__inner_map(map: Pointer): Pointer | null;
  bpf_map__set_inner_map_fd(map: Pointer, fd: number): number;
  bpf_map__type(map: Pointer): number;
  bpf_map__key_size(map: Pointer): number;
  bpf_map__value_size(map: Pointer): number;
  bpf_map__map_flags(map: Pointer): number;
  bpf_program__name(prog: Pointer): string;
  bpf_program__fd(prog: Pointer): number;
  bpf_program__type(prog: Pointer): number;
  bpf_program__attach_cgroup(prog: Pointer, cgroupFd: number): Pointer | null;
  bpf_link__open(path: string): Pointer | null;
  bpf_link__fd(link: Pointer): number;
  bpf_link__pin(link: Pointer, path: string): number;
  bpf_link__unpin(link: Pointer): number;
  bpf_link__update_program(link: Pointer, prog: Pointer): number;
  bpf_link__detach(link: Pointer): number;
  bpf_link__destroy(link: Pointer): number;
  bpf_tc_hook_create(hook: Buffer): number;
  bpf_tc_attach(hook: Buffer, opts: Buffer): number;
  bpf_tc_detach(hook: Buffer, opts: Buffer): number;
  bpf_tc_query(hook: Buffer, opts: Buffer): number;
  libbpf_probe_bpf_prog_type(type: number, opts: null): number;
  libbpf_probe_bpf_map_type(type: number, opts: null): number;
  libbpf_probe_bpf_helper(progType: number, helper: number, opts: null): number;
  libbpf_num_possible_cpus(): number;
}

export interface Libc {
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  fcntl(fd: number, cmd: number, argType: 'int', arg: number): number;
  if_nametoindex(name: string): number;
}

/** The C declaration of each bound function, by name: a name the interface lacks does not compile. */
const LIBBPF_SIGNATURES: { readonly [K in keyof Libbpf]: string } = {
  bpf_map_create: 'int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)',
  bpf_map_update_elem: 'int bpf_map_update_elem(int fd, void *key, void *value, uint64_t flags)',
  bpf_map_lookup_elem: 'int bpf_map_lookup_elem(int fd, void *key, void *value)',
  bpf_map_delete_elem: 'int bpf_map_delete_elem(int fd, void *key)',
  bpf_map_get_next_key: 'int bpf_map_get_next_key(int fd, void *key, void *next_key)',
  bpf_map_lookup_batch: 'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, void *count, void *opts)',
  bpf_map_update_batch: 'int bpf_map_update_batch(int fd, void *keys, void *values, void *count, void *opts)',
  bpf_map_delete_batch: 'int bpf_map_delete_batch(int fd, void *keys, void *count, void *opts)',
  bpf_obj_get: 'int bpf_obj_get(const char *path)',
  bpf_map_get_fd_by_id: 'int bpf_map_get_fd_by_id(uint32_t id)',
  bpf_obj_pin: 'int bpf_obj_pin(int fd, const char *path)',
  bpf_obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int fd, void *info, void *info_len)',
  bpf_prog_test_run_opts: 'int bpf_prog_test_run_opts(int fd, void *opts)',
  bpf_object__open_file: 'void *bpf_object__open_file(const char *path, void *opts)',
  bpf_object__load: 'int bpf_object__load(void *obj)',
  bpf_object__close: 'void bpf_object__close(void *obj)',
  bpf_object__next_map: 'void *bpf_object__next_map(void *obj, void *prev)',
  bpf_object__next_program: 'void *bpf_object__next_program(void *obj, void *prev)',
  bpf_map__name: 'const char *bpf_map__name(void *map)',
  bpf_map__fd: 'int bpf_map__fd(void *map)',
  bpf_map__set_max_entries: 'int bpf_map__set_max_entries(void *map, uint32_t max_entries)',
  bpf_map__inner_map: 'void *bpf_map__inner_map(void *map)',
  bpf_map__set_inner_map_fd: 'int bpf_map__set_inner_map_fd(void *map, int fd)',
  bpf_map__type: 'int bpf_map__type(void *map)',
  bpf_map__key_size: 'uint32_t bpf_map__key_size(void *map)',
  bpf_map__value_size: 'uint32_t bpf_map__value_size(void *map)',
  bpf_map__map_flags: 'uint32_t bpf_map__map_flags(void *map)',
  bpf_program__name: 'const char *bpf_program__name(void *prog)',
  bpf_program__fd: 'int bpf_program__fd(void *prog)',
  bpf_program__type: 'int bpf_program__type(void *prog)',
  bpf_program__attach_cgroup: 'void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)',
  bpf_link__open: 'void *bpf_link__open(const char *path)',
  bpf_link__fd: 'int bpf_link__fd(void *link)',
  bpf_link__pin: 'int bpf_link__pin(void *link, const char *path)',
  bpf_link__unpin: 'int bpf_link__unpin(void *link)',
  bpf_link__update_program: 'int bpf_link__update_program(void *link, void *prog)',
  bpf_link__detach: 'int bpf_link__detach(void *link)',
  bpf_link__destroy: 'int bpf_link__destroy(void *link)',
  bpf_tc_hook_create: 'int bpf_tc_hook_create(void *hook)',
  bpf_tc_attach: 'int bpf_tc_attach(void *hook, void *opts)',
  bpf_tc_detach: 'int bpf_tc_detach(void *hook, void *opts)',
  bpf_tc_query: 'int bpf_tc_query(void *hook, void *opts)',
  libbpf_probe_bpf_prog_type: 'int libbpf_probe_bpf_prog_type(int prog_type, void *opts)',
  libbpf_probe_bpf_map_type: 'int libbpf_probe_bpf_map_type(int map_type, void *opts)',
  libbpf_probe_bpf_helper: 'int libbpf_probe_bpf_helper(int prog_type, int helper_id, void *opts)',
  libbpf_num_possible_cpus: 'int libbpf_num_possible_cpus()',
};

const LIBBPF_PATH = 'libbpf.so.1';
let libbpf: Libbpf | undefined;
let libc: Libc | undefined;
interface Formatter {
  vasprintf(out: Buffer, fmt: bigint, args: bigint): number;
  memcpy(to: Buffer, from: bigint, n: number): unknown;
  free(p: bigint): void;
}
let formatter: Formatter | undefined;

/** libc, loaded on first use. */
export function c(): Libc {
  if (libc === undefined) {
    const l = koffi.load('libc.so.6');
    libc = {
      setns: l.func('int setns(int fd, int nstype)') as Libc['setns'],
      close: l.func('int close(int fd)') as Libc['close'],
      fcntl: l.func('int fcntl(int fd, int cmd, ...)') as Libc['fcntl'],
      if_nametoindex: l.func('unsigned int if_nametoindex(const char *name)') as Libc['if_nametoindex'],
    };
    formatter = {
      vasprintf: l.func('int vasprintf(void *strp, uint64_t fmt, uint64_t args)') as Formatter['vasprintf'],
      memcpy: l.func('void *memcpy(void *dest, uint64_t src, size_t n)') as Formatter['memcpy'],
      free: l.func('void free(uint64_t p)') as Formatter['free'],
    };
  }
  return libc;
}

/** libbpf, loaded on first use (importing bpf/ costs nothing on hosts that never touch BPF). */
export function lib(): Libbpf {
  if (libbpf === undefined) {
    c();
    const l = koffi.load(LIBBPF_PATH);
    // koffi's functions take any arguments; the interface above gives each its C types.
    const bound = Object.fromEntries(Object.entries(LIBBPF_SIGNATURES).map(([name, sig]) => [name, l.func(sig)])) as { [K in keyof Libbpf]: ReturnType<typeof l.func> };
    // Every libbpf message goes through this callback: it is formatted by libc's vasprintf (the
    // va_list arrives as a pointer on x86-64), whole however long (a verifier log can run to
    // megabytes), and kept for the running operation.
    const printProto = koffi.proto('int beacon_libbpf_print(int level, uint64_t fmt, uint64_t args)');
    const setPrint = l.func('void *libbpf_set_print(void *fn)');
    setPrint(koffi.register(onLibbpfPrint, koffi.pointer(printProto)));
    libbpf = bound;
  }
  return libbpf;
}

/** libbpf's levels: LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG. */
export type LibbpfLevel = 'warn' | 'info' | 'debug';
const LEVELS: readonly LibbpfLevel[] = ['warn', 'info', 'debug'];
/** Where libbpf's messages go outside captured operations; by default warnings go to stderr, as libbpf's own printer does. */
let logger: (level: LibbpfLevel, message: string) => void = (level, message) => {
  if (level === 'warn') process.stderr.write(`${message}\n`);
};
type Message = [LibbpfLevel, string];
let captured: Message[] | undefined;

function onLibbpfPrint(level: number, fmt: bigint, args: bigint): number {
  const name = LEVELS[level] ?? 'debug';
  if (name === 'debug') return 0;
  const f = formatter!;
  const out = Buffer.alloc(8);
  const n = f.vasprintf(out, fmt, args);
  if (n < 0) return 0;
  const address = out.readBigUInt64LE(0);
  const bytes = Buffer.alloc(n);
  f.memcpy(bytes, address, n);
  f.free(address);
  const text = bytes.toString('utf8');
  if (captured) captured.push([name, text]);
  else logger(name, text.trimEnd());
  return 0;
}

/** Sends libbpf's warnings and info messages (outside operations that capture them) to `log`. */
export function setLibbpfLogger(log: (level: LibbpfLevel, message: string) => void): void {
  logger = log;
}

/**
 * Runs libbpf calls with libbpf's messages collected: a BpfError thrown by `fn` carries them (for
 * a program load, the verifier log); after success they go to the logger, unless `expected`
 * says the result is an outcome the caller handles (EEXIST of a hook that is there already).
 */
export function withLibbpfLog<T>(fn: () => T, expected: (result: T) => boolean = () => false): T {
  const outer = captured;
  const mine: Message[] = [];
  captured = mine;
  let result: T;
  try {
    result = fn();
  } catch (e) {
    if (e instanceof BpfError && !e.log && mine.length > 0) throw new BpfError(e.operation, e.errno, mine.map(([, text]) => text).join('').trimEnd());
    throw e;
  } finally {
    captured = outer;
  }
  if (expected(result)) return result;
  if (outer) outer.push(...mine);
  else for (const [level, text] of mine) logger(level, text.trimEnd());
  return result;
}

/** A libbpf int result: negative errno becomes a BpfError. */
export function check(result: number, operation: string): number {
  if (result < 0) throw new BpfError(operation, -result);
  return result;
}

/** A libbpf pointer result: NULL becomes a BpfError with errno. */
export function checkPointer(result: Pointer | null, operation: string): Pointer {
  if (result === null) throw new BpfError(operation, koffi.errno() || Errno.EINVAL);
  return result;
}

/** The raw address of a buffer's first byte, for pointer fields of option structs. */
export const addressOf = (b: Buffer | null | undefined): bigint => (b ? koffi.address(b) : 0n);

/** A zeroed option struct of `size` bytes with its leading `size_t sz` set. */
export function optsBuffer(size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeBigUInt64LE(BigInt(size), 0);
  return b;
}

/** A NUL-terminated C string in memory this process owns. */
export const cString = (s: string): Buffer => Buffer.from(`${s}\0`, 'utf8');

const F_DUPFD_CLOEXEC = 1030;
/** A close-on-exec duplicate of `fd`, so handles outlive the object that created the original. */
export function dupFd(fd: number, operation: string): number {
  const r = c().fcntl(fd, F_DUPFD_CLOEXEC, 'int', 0);
  if (r < 0) throw new BpfError(`${operation}: fcntl(F_DUPFD_CLOEXEC)`, koffi.errno());
  return r;
}

export function closeFd(fd: number): void {
  c().close(fd);
}

/** bpf_obj_get_info_by_fd into a zeroed buffer of the struct's size. */
export function objectInfo(fd: number, size: number, operation: string): Buffer {
  const info = Buffer.alloc(size);
  check(lib().bpf_obj_get_info_by_fd(fd, info, Uint32Array.of(size)), operation);
  return info;
}

/** A fixed-size NUL-padded C string field. */
export const cStringAt = (b: Buffer, offset: number, length: number): string => {
  const field = b.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end < 0 ? length : end);
};
