/**
 * Just enough DER (ITU-T X.690) to write X.509 v3 certificates (RFC 5280 §4.1) signed with
 * ECDSA P-256 and SHA-256, the algorithm swarmkit uses for its root CA and node certificates.
 * Node's crypto generates the keys, signs, and parses and verifies certificates
 * (crypto.X509Certificate); what it lacks is a way to *make* one, which is this file.
 * Pure: no I/O; the caller supplies the serial number and the validity window.
 */
import type { X509Certificate} from 'node:crypto';
import { type KeyObject, sign } from 'node:crypto';

const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATION = '2.5.4.10';
const OID_ORGANIZATIONAL_UNIT = '2.5.4.11';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** A distinguished name in the order swarmkit writes it: CN (node ID), OU (role), O (cluster ID). */
export interface DistinguishedName {
  readonly commonName: string;
  readonly organizationalUnit?: string;
  readonly organization?: string;
}

export interface CertificateTemplate {
  /** Positive, at most 20 bytes (RFC 5280 §4.1.2.2). */
  readonly serial: Uint8Array;
  readonly subject: DistinguishedName;
  readonly issuer: DistinguishedName;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The subject's public key. */
  readonly publicKey: KeyObject;
  /** The issuer's private key (the subject's own for a self-signed root). */
  readonly signingKey: KeyObject;
  readonly isCa: boolean;
  /** DNS names for subjectAltName (leaf certificates). */
  readonly dnsNames?: readonly string[];
}

/** Builds and signs a certificate; returns it as PEM. Throws a RangeError for a bad serial. */
export function createCertificate(t: CertificateTemplate): string {
  if (t.serial.length === 0 || t.serial.length > 20) throw new RangeError('certificate serial must be 1 to 20 bytes');
  const algorithm = seq(oid(OID_ECDSA_WITH_SHA256));
  const extensions = [
    extension(OID_BASIC_CONSTRAINTS, true, t.isCa ? seq(bool(true), integer(Uint8Array.of(1))) : seq()),
    // digitalSignature|keyCertSign|cRLSign for a CA; digitalSignature|keyEncipherment for a leaf.
    extension(OID_KEY_USAGE, true, t.isCa ? bitString(Uint8Array.of(0x86), 1) : bitString(Uint8Array.of(0xa0), 5)),
  ];
  if (!t.isCa) extensions.push(extension(OID_EXT_KEY_USAGE, false, seq(oid(OID_SERVER_AUTH), oid(OID_CLIENT_AUTH))));
  if (t.dnsNames && t.dnsNames.length > 0) {
    extensions.push(extension(OID_SUBJECT_ALT_NAME, false, seq(...t.dnsNames.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))))));
  }
  const tbs = seq(
    tlv(0xa0, integer(Uint8Array.of(2))),
    integer(t.serial),
    algorithm,
    name(t.issuer),
    seq(time(t.notBefore), time(t.notAfter)),
    name(t.subject),
    t.publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: t.signingKey, dsaEncoding: 'der' });
  const der = seq(tbs, algorithm, bitString(signature, 0));
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

/** The subject of a parsed certificate as swarmkit reads it (CN, OU, O); undefined fields absent. */
export function subjectOf(cert: X509Certificate): { commonName?: string; organizationalUnit?: string; organization?: string } {
  const out: { commonName?: string; organizationalUnit?: string; organization?: string } = {};
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'CN') out.commonName = value;
    else if (key === 'OU') out.organizationalUnit = value;
    else if (key === 'O') out.organization = value;
  }
  return out;
}

function name(dn: DistinguishedName): Buffer {
  const rdns = [rdn(OID_COMMON_NAME, dn.commonName)];
  if (dn.organizationalUnit !== undefined) rdns.push(rdn(OID_ORGANIZATIONAL_UNIT, dn.organizationalUnit));
  if (dn.organization !== undefined) rdns.push(rdn(OID_ORGANIZATION, dn.organization));
  return seq(...rdns);
}

function rdn(type: string, value: string): Buffer {
  return tlv(0x31, seq(oid(type), tlv(0x0c, Buffer.from(value, 'utf8'))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), tlv(0x04, value)) : seq(oid(id), tlv(0x04, value));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = d.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new RangeError(`certificate time out of range: ${iso}`);
  return year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

function integer(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1]! & 0x80) === 0) start++;
  const trimmed = Buffer.from(bytes.subarray(start));
  return tlv(0x02, (trimmed[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), trimmed]) : trimmed);
}

function bool(value: boolean): Buffer {
  return tlv(0x01, Buffer.of(value ? 0xff : 0));
}

function bitString(bytes: Uint8Array, unusedBits: number): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.of(unusedBits), bytes]));
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function seq(...items: Uint8Array[]): Buffer {
  return tlv(0x30, Buffer.concat(items));
}

function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.of(tag, n);
  else if (n < 0x100) header = Buffer.of(tag, 0x81, n);
  else if (n < 0x10000) header = Buffer.of(tag, 0x82, n >>> 8, n & 0xff);
  else header = Buffer.of(tag, 0x83, n >>> 16, (n >>> 8) & 0xff, n & 0xff);
  return Buffer.concat([header, content]);
}
