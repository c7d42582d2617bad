/**
 * An in-memory DnsRecords for tests, the benchmark and simulations: services and tasks set by
 * hand, indexed the way the agent's implementation over the endpoint table should be (by name
 * and by address), so lookups stay O(1) on the query path.
 */
import { InvalidArgumentError } from '../lib/errors.js';
import type { AddressOwner, DnsRecords, ServiceRecord, TaskRecord } from './records.js';
import { parseIpv4 } from './records.js';

export class MemoryRecords implements DnsRecords {
  readonly #services = new Map<string, ServiceRecord>();
  readonly #tasks = new Map<string, TaskRecord[]>();
  readonly #owners = new Map<string, AddressOwner>();
  readonly #networks = new Set<string>();
  /** Bumped by every change: the resolver's answer cache compares it (DnsRecords.version). */
  #version = 0;

  /** Adds or replaces a service (its tasks are kept). Throws InvalidArgumentError on a bad VIP. */
  setService(service: ServiceRecord): void {
    this.#version++;
    if (service.vip !== undefined && parseIpv4(service.vip) === undefined) throw new InvalidArgumentError(`Bad VIP ${service.vip}`);
    const name = service.name.toLowerCase();
    const old = this.#services.get(name);
    if (old?.vip !== undefined) this.#owners.delete(old.vip);
    const record = { ...service, name };
    this.#services.set(name, record);
    if (record.vip !== undefined) this.#owners.set(record.vip, { kind: 'vip', service: record });
  }

  /** Removes a service and its tasks. */
  removeService(name: string): void {
    this.#version++;
    const key = name.toLowerCase();
    const old = this.#services.get(key);
    if (old?.vip !== undefined) this.#owners.delete(old.vip);
    for (const task of this.#tasks.get(key) ?? []) this.#owners.delete(task.address);
    this.#services.delete(key);
    this.#tasks.delete(key);
  }

  /** Adds or replaces a task (by task ID). Throws InvalidArgumentError on a bad address. */
  setTask(task: TaskRecord): void {
    this.#version++;
    if (parseIpv4(task.address) === undefined) throw new InvalidArgumentError(`Bad task address ${task.address}`);
    const record: TaskRecord = { ...task, service: task.service.toLowerCase(), slot: task.slot.toLowerCase(), taskId: task.taskId.toLowerCase() };
    this.removeTask(record.taskId);
    const list = this.#tasks.get(record.service) ?? [];
    list.push(record);
    this.#tasks.set(record.service, list);
    this.#owners.set(record.address, { kind: 'task', task: record });
  }

  removeTask(taskId: string): void {
    this.#version++;
    const id = taskId.toLowerCase();
    for (const [service, list] of this.#tasks) {
      const index = list.findIndex((t) => t.taskId === id);
      if (index < 0) continue;
      const [gone] = list.splice(index, 1);
      if (gone && this.#owners.get(gone.address)?.kind === 'task') this.#owners.delete(gone.address);
      if (list.length === 0) this.#tasks.delete(service);
      return;
    }
  }

  /** Marks a task healthy or not, as the mesh's health checks would. */
  setHealthy(taskId: string, healthy: boolean): void {
    const id = taskId.toLowerCase();
    for (const list of this.#tasks.values()) {
      const task = list.find((t) => t.taskId === id);
      if (task) this.setTask({ ...task, healthy });
    }
  }

  /** Declares an overlay network name. This in-memory table does not scope by it (every service is on every network). */
  addNetwork(name: string): void {
    this.#version++;
    this.#networks.add(name.toLowerCase());
  }

  network(name: string): boolean {
    return this.#networks.has(name);
  }

  version(): number {
    return this.#version;
  }

  service(name: string): ServiceRecord | undefined {
    return this.#services.get(name);
  }

  tasks(service: string): readonly TaskRecord[] {
    return this.#tasks.get(service) ?? [];
  }

  byAddress(overlayAddress: string): AddressOwner | undefined {
    return this.#owners.get(overlayAddress);
  }
}
