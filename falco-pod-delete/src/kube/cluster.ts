// Which cluster the function talks to, with which credentials, and who that makes it.
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { AgentOptions } from 'node:https';
import { createSecureContext } from 'node:tls';
import { isIPv6 } from 'node:net';
import * as k8s from '@kubernetes/client-node';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The service-account token file, re-read when it changes (the kubelet rotates bound tokens) or after a 401. */
export class TokenFile {
  private token = '';
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(readonly path: string, private readonly recheckMs = 1000) {}

  get(): string {
    const now = Date.now();
    if (this.token === '' || now - this.checkedAt >= this.recheckMs) {
      this.checkedAt = now;
      const mtime = statSync(this.path).mtimeMs;
      if (mtime !== this.mtimeMs || this.token === '') {
        this.token = readFileSync(this.path, 'utf8').trim();
        this.mtimeMs = mtime;
      }
    }
    return this.token;
  }

  invalidate(): void {
    this.token = '';
  }
}

export type ClusterSource =
  | { kind: 'kubeconfig-file'; path: string; kc: k8s.KubeConfig }
  | { kind: 'kubeconfig-data'; kc: k8s.KubeConfig }
  | { kind: 'in-cluster'; kc: k8s.KubeConfig; token: TokenFile }
  | { kind: 'kubeconfig-env'; path: string; kc: k8s.KubeConfig }
  | { kind: 'none' };

/** An explicit kubeconfig first (the CE secret file, or content), then in-cluster, then KUBECONFIG; none means dry-run. */
export function discoverCluster(opts: { kubeconfigFile?: string; kubeconfigData?: string; serviceAccountPathPrefix: string }, env = process.env): ClusterSource {
  if (opts.kubeconfigFile && opts.kubeconfigData) throw new Error('invalid configuration: set KUBECONFIG_FILE or KUBECONFIG_DATA, not both');
  if (opts.kubeconfigData) {
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromString(opts.kubeconfigData);
    } catch (e) {
      throw new Error(`invalid configuration: KUBECONFIG_DATA is not a kubeconfig (${(e as Error).message.split('\n')[0]})`);
    }
    if (!kc.getCurrentCluster()) throw new Error('invalid configuration: KUBECONFIG_DATA has no current cluster');
    return { kind: 'kubeconfig-data', kc };
  }
  if (opts.kubeconfigFile) {
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromFile(opts.kubeconfigFile);
    } catch (e) {
      throw new Error(`invalid configuration: KUBECONFIG_FILE ${opts.kubeconfigFile} cannot be loaded (${(e as Error).message.split('\n')[0]})`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`invalid configuration: KUBECONFIG_FILE ${opts.kubeconfigFile} has no current cluster`);
    return { kind: 'kubeconfig-file', path: opts.kubeconfigFile, kc };
  }
  const saDir = `${opts.serviceAccountPathPrefix}${SA_DIR}`;
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(`${saDir}/token`)) {
    // Built from the given env (loadFromCluster reads process.env); the token comes from our TokenFile, which
    // re-reads a rotated file within a second and after a 401 (client-node's own re-reads only every 60 s).
    const host = env.KUBERNETES_SERVICE_HOST;
    const server = `https://${isIPv6(host) ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT}`;
    const kc = new k8s.KubeConfig();
    kc.loadFromClusterAndUser({ name: 'inCluster', server, caFile: `${saDir}/ca.crt`, skipTLSVerify: false }, { name: 'inClusterUser' });
    return { kind: 'in-cluster', kc, token: new TokenFile(`${saDir}/token`) };
  }
  if (env.KUBECONFIG) {
    const kc = new k8s.KubeConfig();
    // The given environment's KUBECONFIG (loadFromDefault would read process.env's): its first file that exists.
    const file = env.KUBECONFIG.split(':').find((f) => f !== '' && existsSync(f));
    if (!file) throw new Error(`invalid configuration: KUBECONFIG ${env.KUBECONFIG} names no file that exists`);
    kc.loadFromFile(file);
    if (!kc.getCurrentCluster()) throw new Error(`invalid configuration: KUBECONFIG ${env.KUBECONFIG} has no current cluster`);
    return { kind: 'kubeconfig-env', path: env.KUBECONFIG, kc };
  }
  return { kind: 'none' };
}

/**
 * Who the function acts as, read from its credentials without an API call: a ServiceAccount token's subject
 * (system:serviceaccount:NS:NAME), a client certificate's subject, else the kubeconfig user's name.
 */
export function identityOf(source: ClusterSource): { name: string; serviceAccount: boolean } {
  if (source.kind === 'none') return { name: 'none', serviceAccount: false };
  const jwtSubject = (token: string | undefined) => {
    try {
      const payload = JSON.parse(Buffer.from((token ?? '').split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
      return typeof payload.sub === 'string' ? payload.sub : undefined;
    } catch {
      return undefined;
    }
  };
  const named = (name: string) => ({ name, serviceAccount: name.startsWith('system:serviceaccount:') });
  if (source.kind === 'in-cluster') {
    let sub: string | undefined;
    try {
      sub = jwtSubject(source.token.get());
    } catch {
      // unreadable now: the mount is still the pod's ServiceAccount
    }
    return { name: sub ?? "the pod's ServiceAccount", serviceAccount: true };
  }
  const user = source.kc.getCurrentUser();
  const fromToken = jwtSubject(user?.token);
  if (fromToken) return named(fromToken);
  const cert = user?.certData ? Buffer.from(user.certData, 'base64') : user?.certFile && existsSync(user.certFile) ? readFileSync(user.certFile) : undefined;
  if (cert) {
    try {
      const subject = new X509Certificate(cert).subject.split('\n').join(', ');
      return named(`client certificate ${subject}`);
    } catch {
      // not a certificate we can read: fall through to the user's name
    }
  }
  return named(`kubeconfig user ${user?.name ?? '(unnamed)'}`);
}

/** TLS material of the current cluster and user, read once, for the shared keep-alive agent. */
export function tlsOptions(kc: k8s.KubeConfig): AgentOptions {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  const data = (inline: string | undefined, file: string | undefined) =>
    inline ? Buffer.from(inline, 'base64') : file ? readFileSync(file) : undefined;
  const opts: AgentOptions = {
    ca: data(cluster?.caData, cluster?.caFile),
    cert: data(user?.certData, user?.certFile),
    key: data(user?.keyData, user?.keyFile),
  };
  if (cluster?.skipTLSVerify) opts.rejectUnauthorized = false;
  if (cluster?.tlsServerName) opts.servername = cluster.tlsServerName;
  // One TLS context for every connection: each new connection otherwise parses the CA and the key again (a
  // few ms of CPU on the path of an alert that opens one).
  opts.secureContext = createSecureContext({ ca: opts.ca, cert: opts.cert, key: opts.key });
  return opts;
}
