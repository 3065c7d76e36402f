// Network-namespace scoping for calls that act on "the caller's" namespace (tc hooks, ifindex
// lookups): setns(2) moves only the calling thread, so the main thread enters the namespace,
// runs a synchronous function and returns before anything else can run on it.

import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';
import { BpfError, c } from './libbpf.js';

const CLONE_NEWNET = 0x40000000;

function enter(fd: number, what: string): void {
  if (c().setns(fd, CLONE_NEWNET) < 0) throw new BpfError(`setns(${what})`, koffi.errno());
}

/**
 * Runs `fn` with the calling thread in the network namespace at `netnsPath` (e.g.
 * /var/run/netns/NAME or /proc/PID/ns/net) and always returns to the original one. `fn` must be
 * synchronous: an await would let other code run in the wrong namespace, so a returned promise
 * is refused (after switching back).
 */
export function withNetns<T>(netnsPath: string, fn: () => T): T {
  // thread-self, not self: the main thread's namespace is what we must come back to.
  const original = openSync('/proc/thread-self/ns/net', 'r');
  try {
    const target = openSync(netnsPath, 'r');
    try {
      enter(target, netnsPath);
    } finally {
      closeSync(target);
    }
    let result: T;
    try {
      result = fn();
    } finally {
      enter(original, 'back to the original network namespace');
    }
    if (result instanceof Promise) {
      result.catch(() => {});
      throw new TypeError('withNetns needs a synchronous function: the namespace is left before a promise settles');
    }
    return result;
  } finally {
    closeSync(original);
  }
}
