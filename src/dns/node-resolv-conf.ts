/** Reads the host's resolv.conf for the forwarder (resolv-conf.ts parses it). */
import { readFile } from 'node:fs/promises';
import { parseResolvConf, type ResolvConf } from './resolv-conf.js';

/** A missing or unreadable file reads as no nameservers, as glibc falls back without one. */
export async function readResolvConf(path = '/etc/resolv.conf'): Promise<ResolvConf> {
  try {
    return parseResolvConf(await readFile(path, 'utf8'));
  } catch {
    return { nameservers: [], search: [] };
  }
}
