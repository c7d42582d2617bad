/**
 * The cluster's certificate authority, after swarmkit's ca package: a self-signed ECDSA P-256
 * root made at `swarm init`, and node certificates whose subject says who the node is —
 * CN = node ID, OU = role (`swarm-manager` | `swarm-worker`), O = cluster ID — so that a
 * manager authorises every mTLS call from the certificate alone.
 *
 * Key material comes from the OS CSPRNG (crypto.generateKeyPairSync), deliberately never
 * from an injected, possibly seeded Rng; the Rng is used for serial numbers only.
 */
import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { InvalidArgumentError, PermissionDeniedError, UnauthenticatedError } from '../lib/errors.js';
import type { Rng } from '../lib/rng.js';
import { createCertificate, subjectOf } from './x509.js';
import type { NodeRole } from './types.js';

/** swarmkit's OUs for the two roles. */
export const MANAGER_OU = 'swarm-manager';
export const WORKER_OU = 'swarm-worker';
/** swarmkit ca.RootCAExpiration: 20 years. */
export const ROOT_CA_VALIDITY_MS = 20 * 365 * 24 * 3600 * 1000;
/** Certificates are valid from an hour before issue, against clock skew (swarmkit's CertBackdate). */
export const BACKDATE_MS = 60 * 60 * 1000;

export function ouForRole(role: NodeRole): string {
  return role === 'manager' ? MANAGER_OU : WORKER_OU;
}

export interface KeyPairPem {
  readonly keyPem: string;
  readonly publicKeyPem: string;
}

/** A fresh ECDSA P-256 key pair (PKCS#8 private key, SPKI public key), both PEM. */
export function generateNodeKey(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Who a verified node certificate says its holder is. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly role: NodeRole;
  readonly clusterId: string;
}

export class ClusterCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly #cert: X509Certificate;
  readonly #key: KeyObject;

  constructor(certPem: string, keyPem: string) {
    this.certPem = certPem;
    this.keyPem = keyPem;
    this.#cert = new X509Certificate(certPem);
    this.#key = createPrivateKey(keyPem);
  }

  /** A new root CA (CN=swarm-ca, as swarmkit names it), valid from `nowMs` for 20 years. */
  static create(clusterId: string, nowMs: number, rng: Rng): ClusterCa {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const subject = { commonName: 'swarm-ca', organization: clusterId };
    const certPem = createCertificate({
      serial: serial(rng),
      subject,
      issuer: subject,
      notBefore: new Date(nowMs - BACKDATE_MS),
      notAfter: new Date(nowMs + ROOT_CA_VALIDITY_MS),
      publicKey,
      signingKey: privateKey,
      isCa: true,
    });
    return new ClusterCa(certPem, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
  }

  /** DER bytes of the CA's subject and public key, for `TLSInfo.CertIssuerSubject`/`CertIssuerPublicKey`. */
  tlsInfo(): { TrustRoot: string; CertIssuerSubject: string; CertIssuerPublicKey: string } {
    const der = this.#cert.raw;
    return {
      TrustRoot: this.certPem,
      CertIssuerSubject: issuerSubjectDer(der).toString('base64'),
      CertIssuerPublicKey: this.#cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    };
  }

  /**
   * Signs a node certificate for `publicKeyPem`. Throws InvalidArgumentError when the key is
   * not a public key Node can read.
   */
  issue(identity: NodeIdentity, publicKeyPem: string, nowMs: number, validityMs: number, rng: Rng): string {
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey(publicKeyPem);
    } catch (error) {
      throw new InvalidArgumentError('The node public key is not a valid PEM public key', { cause: error });
    }
    if (publicKey.asymmetricKeyType !== 'ec') throw new InvalidArgumentError('The node public key must be ECDSA P-256');
    const ou = ouForRole(identity.role);
    return createCertificate({
      serial: serial(rng),
      subject: { commonName: identity.nodeId, organizationalUnit: ou, organization: identity.clusterId },
      issuer: { commonName: 'swarm-ca', organization: identity.clusterId },
      notBefore: new Date(nowMs - BACKDATE_MS),
      notAfter: new Date(nowMs + validityMs),
      publicKey,
      signingKey: this.#key,
      isCa: false,
      // swarmkit puts the role and the node ID in the SANs; clients check "swarm-manager".
      dnsNames: [ou, identity.nodeId],
    });
  }

  /**
   * Checks that `certDer` was issued by this CA for this cluster and is valid at `nowMs`, and
   * returns the identity in it. Throws UnauthenticatedError otherwise.
   */
  verify(certDer: Uint8Array, clusterId: string, nowMs: number): NodeIdentity {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certDer);
    } catch (error) {
      throw new UnauthenticatedError('The node certificate cannot be parsed', { cause: error });
    }
    if (!cert.checkIssued(this.#cert) || !cert.verify(this.#cert.publicKey)) {
      throw new UnauthenticatedError('The node certificate was not issued by this cluster\'s CA');
    }
    if (nowMs < Date.parse(cert.validFrom) || nowMs > Date.parse(cert.validTo)) throw new UnauthenticatedError('The node certificate has expired');
    const subject = subjectOf(cert);
    if (subject.organization !== clusterId) throw new UnauthenticatedError('The node certificate belongs to another cluster');
    const role = subject.organizationalUnit === MANAGER_OU ? 'manager' : subject.organizationalUnit === WORKER_OU ? 'worker' : undefined;
    if (!role || !subject.commonName) throw new UnauthenticatedError('The node certificate names no node or role');
    return { nodeId: subject.commonName, role, clusterId };
  }
}

/**
 * True once a certificate has lived half the time it was issued for (counted from its issue,
 * not its backdated start), or cannot be read: nodes renew then, well before expiry.
 */
export function certificateNeedsRenewal(certPem: string, nowMs: number): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const issued = Date.parse(cert.validFrom) + BACKDATE_MS;
    const expires = Date.parse(cert.validTo);
    return nowMs >= issued + (expires - issued) / 2;
  } catch {
    return true;
  }
}

/** swarmkit's authorisation failure for a worker certificate on a manager-only call. */
export function requireManager(identity: NodeIdentity): void {
  if (identity.role !== 'manager') {
    throw new PermissionDeniedError(`Permission denied: remote certificate not part of OUs: [${MANAGER_OU}]`);
  }
}

function serial(rng: Rng): Uint8Array {
  const bytes = rng.fill(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and not zero-led
  return bytes;
}

/** The issuer (= subject, for the root) Name's DER, cut out of the certificate. */
function issuerSubjectDer(der: Buffer): Buffer {
  // Certificate SEQ → tbsCertificate SEQ → [0] version, serial, signature alg, issuer.
  let offset = headerLength(der, 0);
  offset += headerLength(der, offset);
  for (let i = 0; i < 3; i++) offset += totalLength(der, offset);
  return der.subarray(offset, offset + totalLength(der, offset));
}

function headerLength(der: Buffer, offset: number): number {
  const first = der[offset + 1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function totalLength(der: Buffer, offset: number): number {
  const first = der[offset + 1]!;
  if (first < 0x80) return 2 + first;
  let n = 0;
  for (let i = 0; i < (first & 0x7f); i++) n = (n << 8) | der[offset + 2 + i]!;
  return 2 + (first & 0x7f) + n;
}
