/**
 * What a node keeps on disk about its swarm membership, under `<data dir>/swarm/` (after
 * dockerd's /var/lib/docker/swarm): `state.json` (node ID, cluster, role, managers, addresses)
 * and `certificates/` (swarm-node.key, swarm-node.crt, swarm-root-ca.crt). The leader's store
 * lives in `store/`. Every file is replaced atomically (write, fsync, rename, fsync the
 * directory), so a node killed at any moment restarts either as it was or as it became.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { StoreError } from '../lib/errors.js';
import type { NodeRole } from '../cluster/types.js';

export interface SwarmNodeState {
  readonly nodeId: string;
  readonly clusterId: string;
  readonly role: NodeRole;
  /** True on the node that made the swarm and holds the store. */
  readonly leader: boolean;
  /** Managers' 2377 addresses, leader first. */
  readonly managers: readonly string[];
  /** Where this node's 2377 listener binds and what it advertises (host:port). */
  readonly listenAddr: string;
  readonly advertiseAddr: string;
}

export interface SwarmNodeFiles {
  readonly state: SwarmNodeState;
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
}

export function swarmDir(dataDir: string): string {
  return path.join(dataDir, 'swarm');
}

export function storeDir(dataDir: string): string {
  return path.join(swarmDir(dataDir), 'store');
}

/** The saved membership, or undefined when this node is in no swarm. Throws StoreError for unreadable files. */
export async function loadSwarmNode(dataDir: string): Promise<SwarmNodeFiles | undefined> {
  const dir = swarmDir(dataDir);
  let stateText: string;
  try {
    stateText = await fs.readFile(path.join(dir, 'state.json'), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new StoreError(`Cannot read ${dir}/state.json: ${(error as Error).message}`, { cause: error });
  }
  try {
    const state = JSON.parse(stateText) as SwarmNodeState;
    const certs = path.join(dir, 'certificates');
    const [keyPem, certPem, caPem] = await Promise.all(
      ['swarm-node.key', 'swarm-node.crt', 'swarm-root-ca.crt'].map((f) => fs.readFile(path.join(certs, f), 'utf8')),
    );
    return { state, keyPem: keyPem!, certPem: certPem!, caPem: caPem! };
  } catch (error) {
    throw new StoreError(`Cannot read the swarm state in ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** Saves certificates first and state.json last: state.json is what says "member". */
export async function saveSwarmNode(dataDir: string, files: SwarmNodeFiles): Promise<void> {
  const dir = swarmDir(dataDir);
  const certs = path.join(dir, 'certificates');
  await fs.mkdir(certs, { recursive: true, mode: 0o700 });
  await writeDurably(path.join(certs, 'swarm-node.key'), files.keyPem, 0o600);
  await writeDurably(path.join(certs, 'swarm-node.crt'), files.certPem, 0o644);
  await writeDurably(path.join(certs, 'swarm-root-ca.crt'), files.caPem, 0o644);
  await writeDurably(path.join(dir, 'state.json'), `${JSON.stringify(files.state, null, 2)}\n`, 0o600);
}

/** Forgets the membership (and the store, if any): `swarm leave`. */
export async function removeSwarmNode(dataDir: string): Promise<void> {
  const dir = swarmDir(dataDir);
  await fs.rm(path.join(dir, 'state.json'), { force: true });
  await fs.rm(dir, { recursive: true, force: true });
}

async function writeDurably(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await fs.open(tmp, 'w', mode);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
  const dirHandle = await fs.open(path.dirname(file), 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
