/**
 * A reader for classic pcap files (the tcpdump format: a 24-byte global header, then a 16-byte
 * record header before each frame), enough for the capture fixtures. Either byte order, micro-
 * or nanosecond timestamps. pcapng is not read: tcpdump -w writes classic pcap.
 */
import { readFileSync } from 'node:fs';

export interface PcapFrame {
  /** 1-based, as Wireshark and tshark number frames. */
  readonly number: number;
  readonly timestampSeconds: number;
  /** The fraction of the second, in microseconds or nanoseconds (PcapFile.nanosecond). */
  readonly timestampFraction: number;
  /** Length on the wire; more than data.length when the capture was cut at the snap length. */
  readonly originalLength: number;
  /** The captured bytes: a view into the file's buffer. */
  readonly data: Uint8Array;
}

export interface PcapFile {
  readonly linkType: number;
  readonly snapLength: number;
  readonly nanosecond: boolean;
  readonly frames: readonly PcapFrame[];
}

/** LINKTYPE_ETHERNET (tcpdump.org link-layer header types). */
export const LINKTYPE_ETHERNET = 1;

const MAGIC_MICROSECONDS = 0xa1b2c3d4;
const MAGIC_NANOSECONDS = 0xa1b23c4d;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;

/** Parses a pcap file's bytes. Throws Error on anything that is not a whole, classic pcap file. */
export function parsePcap(bytes: Uint8Array): PcapFile {
  if (bytes.length < GLOBAL_HEADER_LEN) throw new Error('Not a pcap file: shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let little: boolean;
  let nanosecond: boolean;
  const magicLe = view.getUint32(0, true);
  const magicBe = view.getUint32(0, false);
  if (magicLe === MAGIC_MICROSECONDS || magicLe === MAGIC_NANOSECONDS) {
    little = true;
    nanosecond = magicLe === MAGIC_NANOSECONDS;
  } else if (magicBe === MAGIC_MICROSECONDS || magicBe === MAGIC_NANOSECONDS) {
    little = false;
    nanosecond = magicBe === MAGIC_NANOSECONDS;
  } else {
    throw new Error(`Not a pcap file: magic 0x${magicBe.toString(16)}`);
  }
  const major = view.getUint16(4, little);
  if (major !== 2) throw new Error(`Unsupported pcap version ${major}`);
  const snapLength = view.getUint32(16, little);
  const linkType = view.getUint32(20, little) & 0x0fff_ffff; // the top bits carry FCS flags

  const frames: PcapFrame[] = [];
  let at = GLOBAL_HEADER_LEN;
  while (at < bytes.length) {
    if (at + RECORD_HEADER_LEN > bytes.length) throw new Error(`Truncated pcap record header at byte ${at}`);
    const includedLength = view.getUint32(at + 8, little);
    const start = at + RECORD_HEADER_LEN;
    if (start + includedLength > bytes.length) throw new Error(`Truncated pcap frame ${frames.length + 1}`);
    frames.push({
      number: frames.length + 1,
      timestampSeconds: view.getUint32(at, little),
      timestampFraction: view.getUint32(at + 4, little),
      originalLength: view.getUint32(at + 12, little),
      data: bytes.subarray(start, start + includedLength),
    });
    at = start + includedLength;
  }
  return { linkType, snapLength, nanosecond, frames };
}

/** Reads and parses the pcap file at `path`. Throws as parsePcap does, or when the file cannot be read. */
export function readPcap(path: string | URL): PcapFile {
  return parsePcap(new Uint8Array(readFileSync(path)));
}
