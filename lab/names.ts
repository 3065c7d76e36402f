// Names of everything a lab run creates. Every namespace carries the run id as its prefix, so a
// run's leftovers are found by name alone and two runs (or a run and the host) never collide.

/** `bl-` + 6 hex digits: short enough to leave room for host names, unique enough per machine. */
export const RUN_ID_PATTERN = /^bl-[0-9a-f]{6}$/;

/** Host names become part of a namespace name and of log file names: keep them plain. */
const HOST_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

/** The run's bridges live in this namespace; no host may take its name. */
export const SWITCH_HOST = 'switch';

/** Linux IFNAMSIZ is 16 bytes including the terminating NUL (include/uapi/linux/if.h). */
export const MAX_IFNAME = 15;

export class LabNameError extends Error {
  override name = 'LabNameError';
}

/** A new run id from 3 random bytes (injected, so tests choose them). */
export function newRunId(randomBytes: (n: number) => Uint8Array): string {
  const bytes = randomBytes(3);
  if (bytes.length !== 3) throw new LabNameError(`newRunId needs 3 random bytes, got ${bytes.length}`);
  return `bl-${Buffer.from(bytes).toString('hex')}`;
}

export const isRunId = (text: string): boolean => RUN_ID_PATTERN.test(text);

/** The run id that owns namespace `ns`, or undefined when the name is not a lab run's. */
export function runIdOfNamespace(ns: string): string | undefined {
  const m = /^(bl-[0-9a-f]{6})-/.exec(ns);
  return m ? m[1] : undefined;
}

export function checkHostName(name: string): void {
  if (!HOST_NAME_PATTERN.test(name)) {
    throw new LabNameError(`host name "${name}" must be 1-32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit`);
  }
  if (name === SWITCH_HOST) throw new LabNameError(`host name "${SWITCH_HOST}" is reserved for the run's bridges`);
}

export function namespaceName(runId: string, host: string): string {
  if (!isRunId(runId)) throw new LabNameError(`"${runId}" is not a lab run id (bl- and 6 hex digits)`);
  return `${runId}-${host}`;
}

export const switchNamespace = (runId: string): string => namespaceName(runId, SWITCH_HOST);

/**
 * Interface names: at most 15 bytes, and no "/", ":" or whitespace (the kernel's dev_valid_name
 * refuses "/" and whitespace, ":" marks aliases). Kept to a plain set so they read well in `ip`.
 */
export function checkInterfaceName(name: string): void {
  if (name.length === 0 || name.length > MAX_IFNAME) {
    throw new LabNameError(`interface name "${name}" must be 1-${MAX_IFNAME} characters (Linux IFNAMSIZ)`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new LabNameError(`interface name "${name}" may hold only letters, digits, "_", "." and "-", starting with a letter or digit`);
  }
}

/** The first `eth<n>` not yet taken on a host. */
export function nextInterfaceName(taken: ReadonlySet<string>, base = 'eth', limit = 1000): string {
  for (let i = 0; i < limit; i++) {
    const name = `${base}${i}`;
    if (!taken.has(name)) return name;
  }
  throw new LabNameError(`no free ${base}<n> interface name below ${limit}`);
}

/** Switch-side port of the n-th attachment of a run; the switch namespace holds every port of the run. */
export const switchPortName = (n: number): string => `port${n}`;

/** Process names become log file names. */
export function checkProcessName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new LabNameError(`process name "${name}" must be 1-64 characters of letters, digits, "_", "." and "-"`);
  }
}
