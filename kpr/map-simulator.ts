// The BPF maps as plain data, applied op by op: the tests' stand-in for the kernel, so the
// planner's ordering promise (no lookup meets a missing slot or backend between two writes) can
// be checked after every single op, and the agent can run without root.
import { frontendKey, type Algorithm, type FrontendType } from './model.js';
import type { DatapathBackend, DatapathService, DatapathState, FrontendAddress, Op } from './state.js';

/** One service map entry as the kernel holds it: the count, not the slots. */
export interface SimulatedService {
  id: number;
  frontend: FrontendAddress;
  type: FrontendType;
  algorithm: Algorithm;
  affinityTimeoutSeconds: number;
  count: number;
}

export class MapSimulator {
  services = new Map<string, SimulatedService>();
  /** `serviceId/slot` → backend id. */
  slots = new Map<string, number>();
  maglev = new Map<number, Uint32Array>();
  backends = new Map<number, DatapathBackend>();

  /** Maps holding exactly `state`. */
  static of(state: DatapathState): MapSimulator {
    const maps = new MapSimulator();
    for (const s of state.services.values()) {
      maps.write({ op: 'upsertService', service: s });
      maps.write({ op: 'setSlots', serviceId: s.id, slots: s.slots.map((_, i) => i + 1), backendIds: s.slots });
      if (s.maglev) maps.write({ op: 'setMaglev', serviceId: s.id, table: s.maglev });
    }
    for (const b of state.backends.values()) maps.write({ op: 'upsertBackend', backend: b });
    return maps;
  }

  write(op: Op): void {
    switch (op.op) {
      case 'upsertBackend':
        return void this.backends.set(op.backend.id, op.backend);
      case 'setSlots':
        return op.slots.forEach((slot, i) => this.slots.set(`${op.serviceId}/${slot}`, op.backendIds[i]!));
      case 'setMaglev':
        return void this.maglev.set(op.serviceId, op.table);
      case 'upsertService': {
        const { id, frontend, type, algorithm, affinityTimeoutSeconds, slots } = op.service;
        return void this.services.set(frontendKey(frontend), { id, frontend, type, algorithm, affinityTimeoutSeconds, count: slots.length });
      }
      case 'deleteService':
        return void this.services.delete(op.key);
      case 'deleteSlots':
        return op.slots.forEach((slot) => this.slots.delete(`${op.serviceId}/${slot}`));
      case 'deleteMaglev':
        return void this.maglev.delete(op.serviceId);
      case 'deleteBackend':
        return void this.backends.delete(op.id);
    }
  }

  /** The maps read back as the planner's state (as SocketDatapath.read). */
  read(): DatapathState {
    const services = new Map<string, DatapathService>();
    for (const [key, { count, ...s }] of this.services) {
      const maglev = s.algorithm === 'maglev' ? this.maglev.get(s.id) : undefined;
      const slots = Array.from({ length: count }, (_, i) => this.slots.get(`${s.id}/${i + 1}`) ?? 0);
      services.set(key, { ...s, slots, ...(maglev ? { maglev } : {}) });
    }
    return { services, backends: new Map(this.backends) };
  }

  /** As SocketDatapath.adopt: drops slots beyond a count or of no service, and Maglev tables of no Maglev service. */
  adopt(): DatapathState {
    const byId = new Map([...this.services.values()].map((s) => [s.id, s]));
    for (const key of [...this.slots.keys()]) {
      const [id, slot] = key.split('/').map(Number) as [number, number];
      if (slot > (byId.get(id)?.count ?? 0)) this.slots.delete(key);
    }
    for (const id of [...this.maglev.keys()]) if (byId.get(id)?.algorithm !== 'maglev') this.maglev.delete(id);
    return this.read();
  }

  /** What a lookup could meet that it must not: a slot within a count or a Maglev entry naming no backend. */
  broken(maglevTableSize: number): string | undefined {
    for (const [key, s] of this.services) {
      for (let slot = 1; slot <= s.count; slot++) {
        const id = this.slots.get(`${s.id}/${slot}`);
        if (id === undefined || !this.backends.has(id)) return `${key} slot ${slot} -> ${id}`;
      }
      if (s.algorithm !== 'maglev' || s.count === 0) continue;
      const table = this.maglev.get(s.id);
      if (table?.length !== maglevTableSize) return `${key} has no Maglev table`;
      for (const id of table) if (!this.backends.has(id)) return `${key} Maglev entry -> ${id}`;
    }
    return undefined;
  }
}
