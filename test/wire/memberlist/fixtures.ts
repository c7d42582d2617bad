/**
 * The memberlist fixtures: spec §17's hex (captured from or accepted by Debian serf 0.9.4) and
 * serf-capture.json (regenerate with capture-serf.sh).
 */
import { readFileSync } from 'node:fs';
import { hex } from '../../helpers/hex.js';

/** §17.1 Go ping, serf s1 → ts1, SeqNo 1. */
export const GO_PING = hex('0085a44e6f6465a3747331a55365714e6f01aa536f7572636541646472a47f000001aa536f757263654e6f6465a27331aa536f75726365506f7274cd1f0a');
/** §17.2 TS ackResp, nil payload, SeqNo 1 (accepted by serf). */
export const TS_ACK = hex('0282a75061796c6f6164c0a55365714e6f01');
/** §17.3 Go alive for s1, no tags, inc 1, port 7946. */
export const GO_ALIVE = hex(
  '0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461a2ff80a44e6f6465a27331a4506f7274cd1f0aa356736ea6010502020505',
);
/** §17.4 the first part: alive for ts1 with tags lang=typescript, role=ts, port 7950. */
export const GO_ALIVE_TS1 = hex(
  '0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461baff82a46c616e67aa74797065736372697074a4726f6c65a27473a44e6f6465a3747331a4506f7274cd1f0ea356736ea6010502020505',
);
/** §17.4 Go CRC + compound of two alives, CRC a9c4d684. */
export const GO_CRC_COMPOUND = hex(`0ca9c4d68407020055003c ${Buffer.from(GO_ALIVE_TS1).toString('hex')} ${Buffer.from(GO_ALIVE).toString('hex')}`);
/** §17.5 Go suspect and dead: From s1, inc 1, Node ts2. */
export const GO_SUSPECT = hex('0383a446726f6da27331ab496e6361726e6174696f6e01a44e6f6465a3747332');
export const GO_DEAD = hex('0583a446726f6da27331ab496e6361726e6174696f6e01a44e6f6465a3747332');
/** §17.6 Go indirectPingReq, SeqNo 41, target ts2 127.0.0.1:7951, Nack true. */
export const GO_INDIRECT_PING = hex(
  '0188a44e61636bc3a44e6f6465a3747332a4506f7274cd1f0fa55365714e6f29aa536f7572636541646472a47f000001aa536f757263654e6f6465a27331aa536f75726365506f7274cd1f0aa6546172676574a47f000001',
);
/** §17.7 Go TCP ping, compressed: the whole stream, and the 65-byte LZW Buf and what it inflates to. */
export const GO_TCP_PING_LZW = hex(
  '00011422e5e40d9932a5e8cca133064ea92965e214640648d5943775e48c2913840c1939a4fe000010c022468d650a1e14352786c98c1ba1bc9143a7d907050101',
);
export const GO_TCP_PING_STREAM = hex(`0982a4416c676f00a3427566da0041 ${Buffer.from(GO_TCP_PING_LZW).toString('hex')}`);
export const GO_TCP_PING_PLAIN = hex(
  '0085a44e6f6465a57473746370a55365714e6fcc80aa536f7572636541646472a47f000001aa536f757263654e6f6465a27331aa536f75726365506f7274cd1f0a',
);
/** §17.8 Go err over TCP, compressed. */
export const GO_ERR_LZW = hex('001b042a55448e9c3772b4012831248c1b376fe880205366cc9b3670e494993307441d376b20de7103220c9b3308d3d041d306448d80');
export const GO_ERR_STREAM = hex(`0982a4416c676f00a3427566da0036 ${Buffer.from(GO_ERR_LZW).toString('hex')}`);
export const GO_ERR_PLAIN = hex(`0d81a54572726f72da0025 ${Buffer.from('Cannot decompress unknown algorithm 5').toString('hex')}`);
/** §17.9 TS push/pull join (plaintext, uncompressed), accepted by serf. */
export const TS_PUSH_PULL = hex(
  '0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e0087a441646472a47f000001ab496e6361726e6174696f6e01a44d657461baff82a46c616e67aa74797065736372697074a4726f6c65a27473a44e616d65a3747331a4506f7274cd1f0ea5537461746500a356736ea6010502020505',
);
/** §17.10 Go push/pull reply header: {Join: true, Nodes: 1, UserStateLen: 586}. */
export const GO_PUSH_PULL_HEADER = hex('0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656ecd024a');
/** §17.11 TS serf leave intent (user message, serf type 0), accepted by serf. */
export const TS_LEAVE_INTENT = hex('080083a54c54696d6505a44e6f6465a3747334a55072756e65c2');

/** serf's tags for ts1: ff + msgpack {lang: typescript, role: ts} (§14.1). */
export const TS1_META = hex('ff82a46c616e67aa74797065736372697074a4726f6c65a27473');
export const LOOPBACK = Uint8Array.of(127, 0, 0, 1);
export const SERF_VSN = Uint8Array.of(1, 5, 2, 2, 5, 5);

export interface CapturedDatagram {
  readonly frame: number;
  readonly src: number;
  readonly dst: number;
  readonly bytes: Uint8Array;
}

export interface CapturedStream {
  readonly stream: number;
  readonly src: number;
  readonly dst: number;
  readonly bytes: Uint8Array;
  readonly encrypted: boolean;
}

export interface SerfCapture {
  /** The base64 key the encrypted agents e1/e2 used. */
  readonly key: string;
  readonly udpPlain: readonly CapturedDatagram[];
  readonly udpEncrypted: readonly CapturedDatagram[];
  /** One entry per TCP connection and direction, payloads concatenated. */
  readonly tcp: readonly CapturedStream[];
}

interface RawEntry {
  frame?: number;
  stream?: number;
  src: number;
  dst: number;
  hex: string;
}

/** Ports of the encrypted agents in the capture. */
const ENCRYPTED_PORTS = new Set([27948, 27949]);

export function loadSerfCapture(): SerfCapture {
  const raw = JSON.parse(readFileSync(new URL('./fixtures/serf-capture.json', import.meta.url), 'utf8')) as {
    key: string;
    udpPlain: RawEntry[];
    udpEncrypted: RawEntry[];
    tcp: RawEntry[];
  };
  const dgram = (e: RawEntry): CapturedDatagram => ({ frame: e.frame ?? 0, src: e.src, dst: e.dst, bytes: hex(e.hex) });
  return {
    key: raw.key,
    udpPlain: raw.udpPlain.map(dgram),
    udpEncrypted: raw.udpEncrypted.map(dgram),
    tcp: raw.tcp.map((e) => ({
      stream: e.stream ?? 0,
      src: e.src,
      dst: e.dst,
      bytes: hex(e.hex),
      encrypted: ENCRYPTED_PORTS.has(e.src) || ENCRYPTED_PORTS.has(e.dst),
    })),
  };
}
