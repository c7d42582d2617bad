/**
 * memberlist's TCP streams (spec §8): one logical message per direction, no overall length
 * prefix. Go's reader (`ML net.go:1037-1094`) takes one type byte, then
 *
 * - 10 (encrypt): uint32 BE length L (≤ 20 MiB), L bytes of blob with the 5-byte header as
 *   AAD; the plaintext is the rest of the stream;
 * - 9 (compress): one msgpack `compress` struct, self-delimiting; its inflated Buf is the rest;
 * - 6 pushPull, 0 ping, 2 ackResp, 8 user (with userMsgHeader), 13 err: the message itself.
 *
 * A Go peer keeps the connection open while it waits for our reply, so the reader cannot wait
 * for EOF: `StreamReader` is fed chunks and says when one complete message has arrived.
 * The writer builds `[type][msgpack…][raw…]`, compresses it as a whole (v0.2.2 compresses every
 * stream write, even when that makes it larger, `ML net.go:811-820`) and encrypts it.
 */
import { type Result, ok, err } from '../../lib/result.js';
import {
  type EncryptionVersion,
  type FillRandom,
  type Keyring,
  decryptPayload,
  encryptPayload,
  encryptedLength,
} from './crypto.js';
import {
  catchMsgpack,
  compress,
  encodeMessage,
  readBody,
  readCompressed,
  readPushNodeState,
  readPushPullHeader,
  readStreamUser,
  writeStreamUser,
} from './codec.js';
import { type MemberlistWireError, type Message, type PushNodeState, type PushPullHeader, MessageType } from './messages.js';
import { MsgpackFailure, MsgpackReader, MsgpackWriter } from './msgpack.js';

/** memberlist's bound on an encrypted stream and on push/pull state: 20 MiB (`ML net.go:75, 1016`). */
export const MAX_STREAM_SIZE = 20 * 1024 * 1024;
/** The encrypted stream header: type byte 10 and the uint32 BE blob length (spec §10). */
export const STREAM_ENCRYPT_HEADER_LEN = 5;

/** The messages a stream carries (spec §8.1). */
export type StreamMessage = Extract<Message, { type: 'pushPull' | 'ping' | 'ackResp' | 'user' | 'err' }>;

/** What a StreamReader has after a chunk. */
export type StreamReadResult =
  | { readonly status: 'incomplete' }
  | { readonly status: 'message'; readonly message: StreamMessage; readonly encrypted: boolean; readonly compressed: boolean }
  | { readonly status: 'error'; readonly error: MemberlistWireError };

export interface StreamReaderOptions {
  /** Decrypt `[10][len][blob]` streams with these keys. */
  readonly keyring?: Keyring;
  /**
   * GossipVerifyIncoming (default true): with a keyring, a plaintext stream is refused
   * ('not-encrypted'), as memberlist refuses it (`ML net.go:1046-1050`).
   */
  readonly verifyIncoming?: boolean;
  /** Bound on buffered, decrypted and decompressed bytes: MAX_STREAM_SIZE by default. */
  readonly maxSize?: number;
}

const INCOMPLETE: StreamReadResult = { status: 'incomplete' };

/** Progress through a plain push/pull, kept between chunks so each chunk costs only its own bytes. */
interface PushPullProgress {
  header: PushPullHeader;
  nodes: PushNodeState[];
  offset: number;
}

/**
 * Frames one incoming stream message from chunks of any size. Feed every chunk to `push`; the
 * first result that is not 'incomplete' is final, and later calls return it again (bytes after
 * the message are ignored: memberlist reads one message per stream direction). Call `end()`
 * when the peer half-closes. Never throws on bytes; buffers at most `maxSize` (+5) bytes.
 * Messages share memory with the reader's buffer, which the reader never reuses.
 */
export class StreamReader {
  readonly #keyring: Keyring | undefined;
  readonly #verifyIncoming: boolean;
  readonly #maxSize: number;
  #buf = new Uint8Array(0);
  #len = 0;
  /** No parse is attempted until this many bytes are buffered (the encrypted length is known). */
  #need = 1;
  #progress: PushPullProgress | undefined;
  #final: StreamReadResult | undefined;

  constructor(options: StreamReaderOptions = {}) {
    this.#keyring = options.keyring;
    this.#verifyIncoming = options.verifyIncoming ?? true;
    this.#maxSize = options.maxSize ?? MAX_STREAM_SIZE;
  }

  /** Bytes held so far. */
  get buffered(): number {
    return this.#len;
  }

  /** Adds a chunk (copied; the caller keeps it) and tries to complete the message. */
  push(chunk: Uint8Array): StreamReadResult {
    if (this.#final) return this.#final;
    if (chunk.length === 0) return INCOMPLETE;
    if (this.#len + chunk.length > this.#maxSize + STREAM_ENCRYPT_HEADER_LEN) return this.#finish({ status: 'error', error: 'too-large' });
    this.#append(chunk);
    if (this.#len < this.#need) return INCOMPLETE;
    const r = this.#parse();
    return r.status === 'incomplete' ? r : this.#finish(r);
  }

  /** The peer will send nothing more: an unfinished message is 'truncated' (or 'empty'). */
  end(): StreamReadResult {
    if (this.#final) return this.#final;
    return this.#finish({ status: 'error', error: this.#len === 0 ? 'empty' : 'truncated' });
  }

  #finish(r: StreamReadResult): StreamReadResult {
    this.#final = r;
    this.#progress = undefined;
    return r;
  }

  #append(chunk: Uint8Array): void {
    if (this.#len + chunk.length > this.#buf.length) {
      let cap = Math.max(256, this.#buf.length * 2);
      while (cap < this.#len + chunk.length) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(0, this.#len));
      // The old buffer stays untouched: a message already handed out may still view it.
      this.#buf = next;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.length;
  }

  #parse(): StreamReadResult {
    const buf = this.#buf.subarray(0, this.#len);
    const type = buf[0]!;
    if (type === MessageType.encrypt) {
      if (!this.#keyring) return { status: 'error', error: 'no-keyring' };
      if (buf.length < STREAM_ENCRYPT_HEADER_LEN) return INCOMPLETE;
      const blobLen = ((buf[1]! << 24) | (buf[2]! << 16) | (buf[3]! << 8) | buf[4]!) >>> 0;
      if (blobLen > this.#maxSize) return { status: 'error', error: 'too-large' };
      this.#need = STREAM_ENCRYPT_HEADER_LEN + blobLen;
      if (buf.length < this.#need) return INCOMPLETE;
      const plain = decryptPayload(this.#keyring, buf.subarray(STREAM_ENCRYPT_HEADER_LEN, this.#need), buf.subarray(0, STREAM_ENCRYPT_HEADER_LEN));
      if (!plain.ok) return { status: 'error', error: plain.error };
      // The whole rest of the stream is inside the blob: a short plaintext is truncated, not pending.
      return this.#inner(plain.value, true, true);
    }
    if (this.#keyring && this.#verifyIncoming) return { status: 'error', error: 'not-encrypted' };
    return this.#inner(buf, false, false);
  }

  /** After decryption: a compress wrapper or a plain message. */
  #inner(buf: Uint8Array, complete: boolean, encrypted: boolean): StreamReadResult {
    if (buf.length === 0) return { status: 'error', error: 'truncated' };
    if (buf[0] === MessageType.compress) {
      const r = new MsgpackReader(buf, 1);
      const inflated = catchMsgpack(() => readCompressed(r, this.#maxSize));
      if (!inflated.ok) return inflated.error === 'truncated' && !complete ? INCOMPLETE : { status: 'error', error: inflated.error };
      if (!inflated.value.ok) return { status: 'error', error: inflated.value.error };
      return this.#plain(inflated.value.value, true, encrypted, true);
    }
    return this.#plain(buf, complete, encrypted, false);
  }

  #plain(buf: Uint8Array, complete: boolean, encrypted: boolean, compressed: boolean): StreamReadResult {
    if (buf.length === 0) return { status: 'error', error: 'truncated' };
    const type = buf[0]!;
    const res = catchMsgpack((): StreamMessage | MemberlistWireError => {
      switch (type) {
        case MessageType.pushPull:
          return this.#pushPull(buf, complete);
        case MessageType.user: {
          const payload = readStreamUser(new MsgpackReader(buf, 1), this.#maxSize);
          return payload === 'too-large' ? payload : { type: 'user', payload };
        }
        case MessageType.ping:
        case MessageType.ackResp:
        case MessageType.err: {
          const m = readBody(type, new MsgpackReader(buf, 1));
          return m as StreamMessage | MemberlistWireError;
        }
        default:
          return 'unknown-type';
      }
    });
    if (!res.ok) return res.error === 'truncated' && !complete ? INCOMPLETE : { status: 'error', error: res.error };
    if (typeof res.value === 'string') return { status: 'error', error: res.value };
    return { status: 'message', message: res.value, encrypted, compressed };
  }

  /**
   * A push/pull: header, N node states, user state. On a plain stream the parse resumes where
   * the previous chunk left it, so a long state list costs linear time however it is chunked.
   */
  #pushPull(buf: Uint8Array, complete: boolean): StreamMessage | MemberlistWireError {
    let p = complete ? undefined : this.#progress;
    if (!p) {
      const r = new MsgpackReader(buf, 1);
      const header = readPushPullHeader(r);
      if (header.userStateLen > this.#maxSize || header.nodes > this.#maxSize) return 'too-large';
      p = { header, nodes: [], offset: r.offset };
      if (!complete) this.#progress = p;
    }
    const r = new MsgpackReader(buf, p.offset);
    while (p.nodes.length < p.header.nodes) {
      p.nodes.push(readPushNodeState(r));
      p.offset = r.offset;
    }
    const end = p.offset + p.header.userStateLen;
    if (end > buf.length) throw new MsgpackFailure('truncated');
    return { type: 'pushPull', body: { join: p.header.join, nodes: p.nodes, userState: buf.subarray(p.offset, end) } };
  }
}

export interface EncodeStreamOptions {
  /** Compress the whole message (`EnableCompression`, LAN default true). */
  readonly compress?: boolean;
  /** Encrypt as `[10][len][blob]` with the header as AAD. */
  readonly keyring?: Keyring;
  /** 1 unless speaking memberlist protocol 1. */
  readonly encryptionVersion?: EncryptionVersion;
  /** Nonce source for tests; node:crypto otherwise. */
  readonly fillRandom?: FillRandom;
}

/**
 * Encodes one stream message the way memberlist's rawSendMsgStream does (`ML net.go:811-842`):
 * the plain form (a `user` message gets its userMsgHeader), then compress (always, when asked),
 * then encrypt. Returns a new buffer. Throws RangeError on out-of-range numbers (see
 * encodeMessage) or when the encrypted blob would exceed MAX_STREAM_SIZE.
 */
export function encodeStream(msg: StreamMessage, options: EncodeStreamOptions = {}): Uint8Array {
  let plain: Uint8Array;
  if (msg.type === 'user') {
    const w = new MsgpackWriter(msg.payload.length + 32);
    writeStreamUser(w, msg.payload);
    plain = w.finish();
  } else {
    plain = encodeMessage(msg);
  }
  if (options.compress) plain = compress(plain);
  if (!options.keyring) return plain;
  const version = options.encryptionVersion ?? 1;
  const blobLen = encryptedLength(version, plain.length);
  if (blobLen > MAX_STREAM_SIZE) throw new RangeError(`An encrypted stream is at most ${MAX_STREAM_SIZE} bytes, not ${blobLen}`);
  const header = new Uint8Array(STREAM_ENCRYPT_HEADER_LEN);
  header[0] = MessageType.encrypt;
  header[1] = blobLen >>> 24;
  header[2] = (blobLen >>> 16) & 0xff;
  header[3] = (blobLen >>> 8) & 0xff;
  header[4] = blobLen & 0xff;
  const blob = encryptPayload(options.keyring, plain, header, {
    version,
    ...(options.fillRandom && { fillRandom: options.fillRandom }),
  });
  const out = new Uint8Array(STREAM_ENCRYPT_HEADER_LEN + blob.length);
  out.set(header);
  out.set(blob, STREAM_ENCRYPT_HEADER_LEN);
  return out;
}

/**
 * Decodes a complete stream held in one buffer (a test, or a reply read to EOF). Same rules as
 * StreamReader; an unfinished message is 'truncated'. Never throws.
 */
export function decodeStream(bytes: Uint8Array, options: StreamReaderOptions = {}): Result<StreamMessage, MemberlistWireError> {
  const reader = new StreamReader(options);
  let r = reader.push(bytes);
  if (r.status === 'incomplete') r = reader.end();
  return r.status === 'message' ? ok(r.message) : err(r.status === 'error' ? r.error : 'truncated');
}
