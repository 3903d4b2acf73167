/**
 * The TLS certificate files of the configuration (`hl7[].tls`, `mqtt.tls`): do a certificate and
 * its key belong together, and how long is each certificate valid.
 *
 * `lab-gateway check` loads every pair the way `start` will, so that a renewed certificate written
 * next to the old key fails the check (and systemd's ExecStartPre) instead of only the start. The
 * status model reads the validity at start and daily: a certificate the LIS will soon refuse, or
 * refuses already, is a health reason (TLS_CERT_EXPIRY), not a silent handshake failure.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { ConfigIssue, GatewayConfig } from './types.ts';

/** A certificate expiring within this many days is reported (check warns, health is degraded). */
export const TLS_CERT_WARN_DAYS = 30;

const DAY_MS = 86_400_000;

/** A certificate file the gateway serves or trusts, named by its config key. */
export interface CertificateFile {
  /** `hl7[lis].tls.cert`, `mqtt.tls.ca`, … */
  key: string;
  file: string;
  /** The HL7 endpoint that serves or trusts it. */
  endpoint?: string;
}

export interface CertificateValidity extends CertificateFile {
  validTo: Date;
  /** Whole days left (negative once expired). */
  daysLeft: number;
  expired: boolean;
}

/** PEM content inline (tests pass PEM text), else a file path (the MLLP listener loads its files so too). */
export function pemOf(value: string): Buffer {
  return value.includes('-----BEGIN') ? Buffer.from(value) : readFileSync(value);
}

/** Every TLS certificate file of the configuration (certificates served and CA files trusted). */
export function tlsCertificateFiles(config: Pick<GatewayConfig, 'hl7' | 'mqtt'>): CertificateFile[] {
  const files: CertificateFile[] = [];
  for (const h of config.hl7) {
    if (!h.tls) continue;
    if (h.tls.cert) files.push({ key: `hl7[${h.id}].tls.cert`, file: h.tls.cert, endpoint: h.id });
    if (h.tls.ca) files.push({ key: `hl7[${h.id}].tls.ca`, file: h.tls.ca, endpoint: h.id });
  }
  // mqtt.tls is read only by the embedded broker and for mqtts:// or wss:// (config/validate.ts).
  const m = config.mqtt.broker === 'embedded' || /^(mqtts|wss):/i.test(config.mqtt.broker) ? config.mqtt.tls : undefined;
  if (m?.cert) files.push({ key: 'mqtt.tls.cert', file: m.cert });
  if (m?.ca) files.push({ key: 'mqtt.tls.ca', file: m.ca });
  return files;
}

/**
 * The validity of the file's first certificate (the one served; for a CA file, the first CA), or
 * undefined when the file cannot be read as a certificate (check and start report that).
 */
export function certificateValidity(f: CertificateFile, now: number = Date.now()): CertificateValidity | undefined {
  try {
    const validTo = new Date(new X509Certificate(pemOf(f.file)).validTo);
    if (Number.isNaN(validTo.getTime())) return undefined;
    const left = validTo.getTime() - now;
    return { ...f, validTo, daysLeft: Math.floor(left / DAY_MS), expired: left <= 0 };
  } catch {
    return undefined;
  }
}

/** Within TLS_CERT_WARN_DAYS or expired: what the status and check say of it; else undefined. */
export function expiryProblem(v: CertificateValidity): string | undefined {
  const date = v.validTo.toISOString().slice(0, 10);
  if (v.expired) return `certificate ${v.key} has expired (since ${date})`;
  if (v.daysLeft > TLS_CERT_WARN_DAYS) return undefined;
  return v.daysLeft === 0 ? `certificate ${v.key} expires today (${v.validTo.toISOString()})` : `certificate ${v.key} expires in ${v.daysLeft} day${v.daysLeft === 1 ? '' : 's'} (${date})`;
}

/**
 * What `check` says of one TLS block (`prefix` is its validation path, `hl7[0].tls`): a pair that
 * `start` would refuse is an error at the key that is wrong, a certificate expired or
 * within TLS_CERT_WARN_DAYS a warning (start runs with it: see below). Files that do not exist are not looked at (validate.ts
 * names them already).
 */
export function tlsFileIssues(prefix: string, files: { cert?: string | undefined; key?: string | undefined; ca?: string | undefined }, now: number = Date.now()): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const read = (k: 'cert' | 'key' | 'ca'): Buffer | undefined => {
    const f = files[k];
    if (!f) return undefined;
    try {
      return pemOf(f);
    } catch {
      return undefined;
    }
  };
  const cert = read('cert');
  const key = read('key');
  const ca = read('ca');
  const load = (o: tls.SecureContextOptions): string | undefined => {
    try {
      tls.createSecureContext(o);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  };
  // Each file alone first, so that the message names the file that is wrong.
  const certProblem = cert ? load({ cert }) : undefined;
  const keyProblem = key ? load({ key }) : undefined;
  const caProblem = ca ? load({ ca }) : undefined;
  // A key named as the certificate, a certificate as the key: said in words, not OpenSSL's codes
  // ("PEM routines::no start line"; test/integration/review-s22-config-tls-swapped.test.ts).
  const holdsKey = (b: Buffer | undefined): boolean => b !== undefined && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(b.toString('latin1'));
  const holdsCert = (b: Buffer | undefined): boolean => b !== undefined && b.toString('latin1').includes('-----BEGIN CERTIFICATE-----');
  const swapped = certProblem !== undefined && keyProblem !== undefined && holdsKey(cert) && holdsCert(key) ? ": cert and key are swapped (write each file at the other's key)" : '';
  if (certProblem) issues.push({ severity: 'error', path: `${prefix}.cert`, message: swapped ? `${files.cert} holds a private key, not a certificate${swapped}` : `is not a usable PEM certificate: ${certProblem}` });
  if (keyProblem) issues.push({ severity: 'error', path: `${prefix}.key`, message: swapped ? `${files.key} holds a certificate, not a private key${swapped}` : `is not a usable PEM private key: ${keyProblem}` });
  if (caProblem) issues.push({ severity: 'error', path: `${prefix}.ca`, message: `is not a usable PEM CA certificate: ${caProblem}` });
  if (cert && key && !certProblem && !keyProblem) {
    // What start does with them (tls.createServer, the embedded broker, the MQTT client).
    const pair = load({ cert, key, ...(ca && !caProblem ? { ca } : {}) });
    if (pair) issues.push({ severity: 'error', path: `${prefix}.key`, message: `does not match ${prefix}.cert: ${pair} (start refuses this pair; a renewed certificate needs the key it was issued for)` });
  }
  // A CA file is a bundle: every certificate in it is read (caFileIssues), not the first alone.
  if (files.ca && !caProblem) issues.push(...caFileIssues(`${prefix}.ca`, files.ca, now));
  const v = files.cert && !certProblem ? certificateValidity({ key: `${prefix}.cert`, file: files.cert }, now) : undefined;
  const problem = v && expiryProblem(v);
  if (v && problem) {
    // A warning even once expired: start runs with it (the other links, the analyzers' lines and
    // the relay keep working; the status shows TLS_CERT_EXPIRY), and an error here would stop
    // systemd's ExecStartPre, so the whole gateway, over one link.
    issues.push({
      severity: 'warning',
      path: `${prefix}.cert`,
      message: v.expired ? `${problem}: peers refuse the connection until it is renewed (the gateway reads it at the next restart)` : `${problem}: renew it before then (the gateway reads it at the next restart)`,
    });
  }
  return issues;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificate's common name (else its whole subject on one line), for messages. */
function subjectName(x: X509Certificate): string {
  return /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1] ?? x.subject.replace(/\n/g, ', ');
}

/**
 * What `check` says of a CA file (`hl7[].tls.ca`, `mqtt.tls.ca`, `odoo.caFile`), which may be a
 * bundle of several certificates: one that holds no PEM certificate at all is an error (Node reads
 * nothing from a DER file or a key and says nothing, so every handshake it should allow fails with
 * "unable to get local issuer certificate", far from the key that is wrong); every certificate of
 * the bundle that has expired or expires within TLS_CERT_WARN_DAYS is a warning, named by its
 * position and common name. A file that cannot be read is left to the checks that name it.
 */
export function caFileIssues(keyPath: string, file: string, now: number = Date.now()): ConfigIssue[] {
  let raw: Buffer;
  try {
    raw = pemOf(file);
  } catch {
    return [];
  }
  const text = raw.toString('latin1');
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    const what = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)
      ? 'it holds a private key: name the CA\'s certificate instead'
      : raw[0] === 0x30
        ? `it looks like a DER (binary) certificate: convert it with \`openssl x509 -inform der -in ${file} -out ca.pem\` and name the .pem file`
        : 'name a file of PEM certificates';
    return [{ severity: 'error', path: keyPath, message: `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----), so no peer it should trust is trusted: ${what}` }];
  }
  const issues: ConfigIssue[] = [];
  blocks.forEach((block, i) => {
    const which = blocks.length === 1 ? 'its certificate' : `certificate ${i + 1} of ${blocks.length}`;
    let x: X509Certificate;
    try {
      x = new X509Certificate(block);
    } catch (err) {
      issues.push({ severity: 'error', path: keyPath, message: `${which} in ${file} cannot be read: ${err instanceof Error ? err.message : String(err)}` });
      return;
    }
    const validTo = new Date(x.validTo);
    if (Number.isNaN(validTo.getTime())) return;
    const left = validTo.getTime() - now;
    const days = Math.floor(left / DAY_MS);
    const date = validTo.toISOString().slice(0, 10);
    const name = `${which} (${subjectName(x)})`;
    if (left <= 0) {
      issues.push({ severity: 'warning', path: keyPath, message: `${name} has expired (since ${date}): certificates it signed are refused; renew it${blocks.length > 1 ? ' or take it out of the bundle' : ''}` });
    } else if (days <= TLS_CERT_WARN_DAYS) {
      issues.push({ severity: 'warning', path: keyPath, message: `${name} expires ${days === 0 ? 'today' : `in ${days} day${days === 1 ? '' : 's'}`} (${date}): renew it before then (the gateway reads it at the next restart)` });
    }
  });
  return issues;
}
