/**
 * The test certificate authority: generated at the start of a test run or sandbox, written to a folder whose
 * `ca.pem` is handed to Node through `NODE_EXTRA_CA_CERTS`, and used to issue the emulators' server certificates.
 * Keys come from Node's crypto (fast, native); node-forge only assembles and signs the X.509 structures.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import forge from 'node-forge';

/** A certificate and its private key, both PEM. */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

/** Options for {@link createCertificate}. */
export interface CertificateOptions {
  /** Subject common name. */
  commonName: string;
  /** Start of validity (default: one hour ago). */
  notBefore?: Date;
  /** End of validity (default: one year from now). */
  notAfter?: Date;
  /** Signing CA; self-signed when absent. */
  issuer?: PemPair;
  /** True for a CA certificate. */
  isCa?: boolean;
  /** DNS names and IP addresses for a server certificate. */
  subjectAltNames?: string[];
}

function newKeyPair(): { publicKeyPem: string; privateKeyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Creates an RSA 2048 certificate signed by `issuer`, or self-signed. */
export function createCertificate(options: CertificateOptions): PemPair {
  const keys = newKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 365 * 86_400_000);
  const subject = [{ name: 'commonName', value: options.commonName }];
  cert.setSubject(subject);
  const extensions: object[] = [];
  if (options.isCa) {
    extensions.push({ name: 'basicConstraints', cA: true, critical: true });
    extensions.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true });
  } else {
    extensions.push({ name: 'basicConstraints', cA: false });
    extensions.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true });
  }
  if (options.subjectAltNames?.length) {
    extensions.push({ name: 'extKeyUsage', serverAuth: true, clientAuth: true });
    extensions.push({
      name: 'subjectAltName',
      altNames: options.subjectAltNames.map((n) => (/^[\d.]+$|:/.test(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    });
  }
  cert.setExtensions(extensions);
  let signingKey = forge.pki.privateKeyFromPem(keys.privateKeyPem);
  if (options.issuer) {
    const issuerCert = forge.pki.certificateFromPem(options.issuer.certPem);
    cert.setIssuer(issuerCert.subject.attributes);
    signingKey = forge.pki.privateKeyFromPem(options.issuer.keyPem);
  } else {
    cert.setIssuer(subject);
  }
  cert.sign(signingKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privateKeyPem };
}

/** Creates a fresh test CA. */
export function createTestCa(): PemPair {
  return createCertificate({ commonName: `Mail gateway test CA ${randomBytes(4).toString('hex')}`, isCa: true });
}

/** Issues a loopback server certificate (localhost, 127.0.0.1, ::1) signed by `ca`. */
export function issueServerCertificate(ca: PemPair): PemPair {
  return createCertificate({ commonName: 'localhost', issuer: ca, subjectAltNames: ['localhost', '127.0.0.1', '::1'] });
}

/** Writes the CA to `dir` as `ca.pem` (for NODE_EXTRA_CA_CERTS) and `ca-key.pem`; returns the `ca.pem` path. */
export function writeTestCa(ca: PemPair, dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
  return join(dir, 'ca.pem');
}

/** Reads a CA written by {@link writeTestCa}. */
export function readTestCa(dir: string): PemPair {
  return {
    certPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    keyPem: readFileSync(join(dir, 'ca-key.pem'), 'utf8'),
  };
}

/** SHA-1 and SHA-256 thumbprints of a PEM certificate, base64url, as `x5t` and `x5t#S256` carry them. */
export function thumbprints(certPem: string): { sha1: string; sha256: string } {
  const x509 = new X509Certificate(certPem);
  const hexToB64url = (hex: string) => Buffer.from(hex.replace(/:/g, ''), 'hex').toString('base64url');
  return { sha1: hexToB64url(x509.fingerprint), sha256: hexToB64url(x509.fingerprint256) };
}

/** Packs a certificate and key into a password-less PKCS#12 (as Key Vault stores a certificate's backing secret). */
export function toPkcs12Base64(pair: PemPair, password = ''): string {
  const p12 = forge.pkcs12.toPkcs12Asn1(
    forge.pki.privateKeyFromPem(pair.keyPem),
    [forge.pki.certificateFromPem(pair.certPem)],
    password,
    { algorithm: '3des' },
  );
  return Buffer.from(forge.asn1.toDer(p12).getBytes(), 'binary').toString('base64');
}
