/**
 * HashiCorp memberlist's messages, as memberlist v0.2.2 (the one inside Debian's serf 0.9.4)
 * puts them on the wire (shared/specs/memberlist-wire.md, "the spec" below).
 *
 * Field names are memberlist's own Go field names in camelCase; the codec (codec.ts) maps them
 * to the exact Go keys (`SeqNo`, `SourceAddr`, …) and writes them in Go's sorted order.
 * Byte fields are Uint8Array; addresses are raw IP bytes, 4 for IPv4 or 16 for IPv6 (spec §1).
 */

/**
 * Message type bytes, `messageType` in `ML net.go:42-60` (Go `iota`). Protocol constants:
 * append-only, never renumber.
 */
export const MessageType = {
  /** UDP and TCP; msgpack `ping`. */
  ping: 0,
  /** UDP; msgpack `indirectPingReq`. */
  indirectPing: 1,
  /** UDP, and TCP as the reply to a TCP ping; msgpack `ackResp`. */
  ackResp: 2,
  /** UDP; msgpack `suspect`. */
  suspect: 3,
  /** UDP; msgpack `alive`. */
  alive: 4,
  /** UDP; msgpack `dead`. */
  dead: 5,
  /** TCP; header, N node states, raw user state (spec §8.2). */
  pushPull: 6,
  /** UDP; count byte, uint16 BE lengths, the parts (spec §3). */
  compound: 7,
  /** UDP: raw delegate bytes follow. TCP: msgpack `userMsgHeader` then raw bytes (spec §8.4). */
  user: 8,
  /** UDP and TCP; msgpack `compress{Algo, Buf}`, Buf = LZW of a whole message (spec §5). */
  compress: 9,
  /** TCP only: uint32 BE length + ciphertext. UDP ciphertext carries no type byte (spec §10). */
  encrypt: 10,
  /** UDP; msgpack `nackResp`. */
  nackResp: 11,
  /** UDP; uint32 BE CRC-32/IEEE of the rest, then the inner message (spec §4). */
  hasCrc: 12,
  /** TCP; msgpack `errResp`. */
  err: 13,
  // 244 `hasLabel` exists only in memberlist >= 0.3.0. serf 0.9.4 drops it ("msg type (244) not
  // supported", ML net.go:406-407), so shoal never sends it and treats it as unknown (spec §15).
} as const;
export type MessageTypeName = keyof typeof MessageType;

/** A node's state as pushNodeState.State carries it (`ML state.go:16-23`). Protocol constants. */
export const NodeState = {
  alive: 0,
  suspect: 1,
  dead: 2,
  left: 3,
} as const;
export type NodeStateName = keyof typeof NodeState;
export type NodeStateValue = (typeof NodeState)[NodeStateName];

/** compress.Algo values (`ML net.go:62-67`): only LZW is defined. */
export const CompressionAlgo = {
  lzw: 0,
} as const;

/**
 * The Vsn that serf 0.9.4's agent advertises and that shoal mirrors: protocol min 1, max 5,
 * current 2; delegate min 2, max 5, current 5 (spec §9). Always exactly 6 bytes: a shorter Vsn
 * makes Go index past the end and panic (spec §7.5).
 */
export const DEFAULT_VSN: readonly number[] = [1, 5, 2, 2, 5, 5];
export const VSN_LEN = 6;

/** `ping` (`ML net.go:80-91`, spec §7.1). Source fields are `omitempty` in Go. */
export interface Ping {
  readonly seqNo: number;
  /** The intended target's name; a receiver drops a ping naming someone else (`ML net.go:489-493`). */
  readonly node: string;
  readonly sourceAddr?: Uint8Array;
  readonly sourcePort?: number;
  readonly sourceNode?: string;
}

/** `indirectPingReq` (`ML net.go:94-109`, spec §7.2). */
export interface IndirectPingReq {
  /** The original prober's sequence number. */
  readonly seqNo: number;
  /** IP bytes of the node to probe. */
  readonly target: Uint8Array;
  /** Its port; 0 means "use my bind port". */
  readonly port: number;
  readonly node: string;
  /** The prober wants a nack if the target does not answer within ProbeTimeout. */
  readonly nack: boolean;
  readonly sourceAddr?: Uint8Array;
  readonly sourcePort?: number;
  readonly sourceNode?: string;
}

/** `ackResp` (`ML net.go:112-116`). An empty payload goes out as msgpack nil, as Go's nil slice. */
export interface AckResp {
  readonly seqNo: number;
  readonly payload: Uint8Array;
}

/** `nackResp` (`ML net.go:118-121`). */
export interface NackResp {
  readonly seqNo: number;
}

/** `errResp` (`ML net.go:123-127`): TCP only, when a server fails to read a stream. */
export interface ErrResp {
  readonly error: string;
}

/** `suspect` (`ML net.go:130-135`, spec §7.4). `node` is the subject, `from` the accuser. */
export interface Suspect {
  readonly incarnation: number;
  readonly node: string;
  readonly from: string;
}

/** `alive` (`ML net.go:138-148`, spec §7.5). */
export interface Alive {
  readonly incarnation: number;
  readonly node: string;
  /** 4 or 16 IP bytes. */
  readonly addr: Uint8Array;
  /** 0 means the receiver substitutes its own bind port. */
  readonly port: number;
  /** At most 512 bytes (`MetaMaxSize`); serf puts its tags here (spec §14.1). */
  readonly meta: Uint8Array;
  /** [PMin, PMax, PCur, DMin, DMax, DCur]; send exactly 6 bytes. Decoded as received (any length). */
  readonly vsn: Uint8Array;
}

/** `dead` (`ML net.go:150-156`). `from === node` is a graceful leave: the node becomes *left*. */
export interface Dead {
  readonly incarnation: number;
  readonly node: string;
  readonly from: string;
}

/** `pushPullHeader` (`ML net.go:160-165`, spec §7.6). Go's ints: never negative on the wire. */
export interface PushPullHeader {
  readonly nodes: number;
  readonly userStateLen: number;
  readonly join: boolean;
}

/** `pushNodeState` (`ML net.go:167-176`, spec §7.6): one row of a push/pull. */
export interface PushNodeState {
  readonly name: string;
  readonly addr: Uint8Array;
  readonly port: number;
  readonly meta: Uint8Array;
  readonly incarnation: number;
  /** A NodeState value; other numbers are passed through for the caller to judge. */
  readonly state: number;
  readonly vsn: Uint8Array;
}

/** `userMsgHeader` (`ML net.go:178-181`): precedes a user message on TCP only. */
export interface UserMsgHeader {
  readonly userMsgLen: number;
}

/** `compress` (`ML net.go:183-188`). `buf` is the LZW of a complete message, type byte included. */
export interface Compress {
  readonly algo: number;
  readonly buf: Uint8Array;
}

/** A whole push/pull stream after decoding (spec §8.2): header fields, the rows, the user state. */
export interface PushPull {
  readonly join: boolean;
  readonly nodes: readonly PushNodeState[];
  /** The delegate's raw state (serf: `[2] ++ msgpack`); empty when UserStateLen is 0. */
  readonly userState: Uint8Array;
}

/**
 * One decoded message, framing (compound, compress, CRC, encryption) already removed.
 * `user` carries the delegate's raw bytes whichever transport brought them; `pushPull` and `err`
 * only come over TCP.
 */
export type Message =
  | { readonly type: 'ping'; readonly body: Ping }
  | { readonly type: 'indirectPing'; readonly body: IndirectPingReq }
  | { readonly type: 'ackResp'; readonly body: AckResp }
  | { readonly type: 'nackResp'; readonly body: NackResp }
  | { readonly type: 'suspect'; readonly body: Suspect }
  | { readonly type: 'alive'; readonly body: Alive }
  | { readonly type: 'dead'; readonly body: Dead }
  | { readonly type: 'pushPull'; readonly body: PushPull }
  | { readonly type: 'err'; readonly body: ErrResp }
  | { readonly type: 'user'; readonly payload: Uint8Array };

export type MessageKind = Message['type'];

/**
 * Why the memberlist codec refused bytes. Parsers return one of these and never throw; the
 * gossip layer counts drops as `gossip_rx_dropped_<reason>` with '-' as '_'.
 */
export type MemberlistWireError =
  | 'truncated' // shorter than a header, length field or msgpack object says
  | 'bad-msgpack' // not decodable as msgpack, or a field of the wrong msgpack type
  | 'bad-field' // a field's value is out of range for its Go type (negative uint, > uint32 …)
  | 'bad-crc' // hasCrc checksum mismatch
  | 'bad-compression' // LZW stream invalid or without its EOF code
  | 'unknown-algo' // compress.Algo other than 0 (LZW)
  | 'unknown-type' // a message type byte memberlist 0.2.2 does not define (244 hasLabel included)
  | 'too-large' // a length over memberlist's bounds (20 MiB stream, decompressed size …)
  | 'too-deep' // compound/compress nested beyond the recursion bound
  | 'decrypt-failed' // no key in the keyring opened the ciphertext
  | 'bad-encryption-version' // ciphertext version byte other than 0 or 1
  | 'not-encrypted' // a keyring is configured and the input is plaintext (GossipVerifyIncoming)
  | 'no-keyring' // encrypted TCP input but no keyring configured
  | 'empty'; // a zero-length datagram or message

export const MEMBERLIST_WIRE_ERRORS: readonly MemberlistWireError[] = [
  'truncated',
  'bad-msgpack',
  'bad-field',
  'bad-crc',
  'bad-compression',
  'unknown-algo',
  'unknown-type',
  'too-large',
  'too-deep',
  'decrypt-failed',
  'bad-encryption-version',
  'not-encrypted',
  'no-keyring',
  'empty',
];
