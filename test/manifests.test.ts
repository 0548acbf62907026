// stack.yml, template.yml, the Dockerfile and rbac.yaml agree with each other and with the code.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Metrics } from '../falco-pod-delete/src/metrics.js';
import YAML from 'yaml';
import { OPTIONS } from '../falco-pod-delete/src/config.js';
import { loadPolicy } from '../falco-pod-delete/src/policy.js';
import { FakeApiServer, inClusterEnv, stageServiceAccount } from './support/apiserver.js';
import { DOC_FILES, allDocs, anchorOf, docSection } from './support/docs.js';
import { fixture, startFunction, withFields } from './support/harness.js';

const read = (p: string) => readFileSync(p, 'utf8');
const rbac = YAML.parseAllDocuments(read('rbac.yaml')).map((d) => d.toJS() as Record<string, any>);
const stack = YAML.parse(read('stack.yml')) as { functions: Record<string, Record<string, any>> };
const fnSpec = stack.functions['falco-pod-delete'];
const WATCHDOG_ENV = new Set(['exec_timeout', 'read_timeout', 'write_timeout', 'NODE_OPTIONS', 'fprocess']);

describe('stack.yml and the template', () => {
  const lang = fnSpec.lang as string;
  const template = YAML.parse(read(`template/${lang}/template.yml`)) as Record<string, string>;
  const dockerfile = read(`template/${lang}/Dockerfile`);

  it('names a template this repository ships, and a handler folder with handler.ts', () => {
    expect(template.language).toBe(lang);
    expect(fnSpec.handler).toBe('./falco-pod-delete');
    expect(existsSync('falco-pod-delete/handler.ts')).toBe(true);
    expect(existsSync(`template/${lang}/function/handler.ts`)).toBe(true);
  });

  it('runs the same fprocess in template.yml and the Dockerfile, with the of-watchdog in http mode', () => {
    expect(dockerfile).toContain(`ENV fprocess="${template.fprocess}"`);
    expect(dockerfile).toMatch(/ENV mode="http"/);
    expect(dockerfile).toMatch(/ENV upstream_url="http:\/\/127\.0\.0\.1:3000"/);
    expect(dockerfile).toMatch(/ARG NODE_VERSION=18/);
    expect(dockerfile).toMatch(/FROM .*ghcr\.io\/openfaas\/of-watchdog:/);
    expect(dockerfile).toMatch(/^USER 10001:10001$/m);
    expect(dockerfile).toMatch(/ENV prefix_logs="false"/);
  });

  it('runs as the ServiceAccount that rbac.yaml defines', () => {
    const sa = rbac.find((o) => o.kind === 'ServiceAccount');
    expect(fnSpec.annotations['com.openfaas.serviceaccount']).toBe(sa?.metadata.name);
    expect(sa?.metadata.namespace).toBe('openfaas-fn');
  });

  it('sets memory requests and a limit, with a --max-old-space-size well under the limit (V8 fails loudly before the kernel kills)', () => {
    const mi = (q: string) => Number(/^(\d+)Mi$/.exec(q)?.[1]);
    const limit = mi(fnSpec.limits.memory);
    const request = mi(fnSpec.requests.memory);
    const oldSpace = Number(/--max-old-space-size=(\d+)/.exec(fnSpec.environment.NODE_OPTIONS)?.[1]);
    expect(request).toBeGreaterThan(0);
    expect(limit).toBeGreaterThanOrEqual(request);
    // Room above the heap for code, the young generation and native memory (about 120 MB measured with the view full).
    expect(oldSpace).toBeGreaterThan(0);
    expect(limit - oldSpace).toBeGreaterThanOrEqual(128);
  });

  it('configures only variables the function reads, each with a valid value', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    for (const key of Object.keys(fnSpec.environment)) expect(WATCHDOG_ENV.has(key) || known.has(key)).toBe(true);
    const env = Object.fromEntries(Object.entries(fnSpec.environment).map(([k, v]) => [k, String(v)]));
    expect(() => OPTIONS.forEach((o) => env[o.env] !== undefined && o.parse(env[o.env], o.env))).not.toThrow();
  });

  it('gives the watchdog more time than the alert deadline', () => {
    const seconds = (v: string) => Number(v.replace(/s$/, ''));
    expect(seconds(fnSpec.environment.write_timeout) * 1000).toBeGreaterThan(Number(fnSpec.environment.ALERT_DEADLINE_MS));
  });
});

describe('rbac.yaml', () => {
  it('is a ServiceAccount, a ClusterRole and a ClusterRoleBinding joining them, plus a Role for Leases in its own namespace', () => {
    expect(rbac.map((o) => o.kind)).toEqual(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
    const [sa, role, binding, nsRole, nsBinding] = rbac;
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    expect(nsRole.metadata.namespace).toBe(sa.metadata.namespace);
    expect(nsRole.rules.map((r: { resources: string[] }) => r.resources)).toEqual([['leases']]);
    expect(nsBinding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: nsRole.metadata.name });
    expect(nsBinding.subjects).toEqual(binding.subjects);
  });

  // That it grants nothing the code does not call is checked by the real server (test/cluster/identity.test.ts).
  it('grants every call the code makes on the stand-in', async () => {
    const granted = new Set<string>();
    for (const rule of [...rbac[1].rules, ...rbac[3].rules] as { apiGroups: string[]; resources: string[]; verbs: string[] }[]) {
      for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) granted.add(`${v} ${g}/${r}`);
    }
    const api = await new FakeApiServer('t').start();
    const called = new Set<string>();
    try {
      const container = 'ee97d9c4186f' + 'f'.repeat(52);
      const scenarios: { policy: string; fields?: Record<string, unknown>; forbid?: string }[] = [
        { policy: 'delete' },
        { policy: 'isolate' },
        { policy: 'delete', fields: { 'k8s.pod.name': null, 'k8s.ns.name': null } },
        { policy: 'delete', forbid: 'delete:pods' }, // a failed action gives its slot back
      ];
      for (const sc of scenarios) {
        api.requests.length = 0;
        api.forbidden.clear();
        if (sc.forbid) api.forbidden.add(sc.forbid);
        api.addPod({ namespace: 'default', name: 'kubecon', containerIds: [container], nodeName: 'falco-xczjd' });
        const fn = await startFunction(inClusterEnv(api, stageServiceAccount('t').prefix, { POLICY: `entries: [{name: p, match: {}, action: ${sc.policy}}]` }));
        const r = await fn.post(withFields(fixture('15-DERIVED-falcosidekick-forwarded-form-of-01.json'), sc.fields ?? {}));
        for (let i = 0; i < 100 && !api.requests.some((c) => c.method === 'GET' && c.path.endsWith('/leases')); i++) await new Promise((w) => setTimeout(w, 20));
        await fn.stop();
        expect(r.status).toBe(sc.forbid ? 403 : 200);
        for (const c of api.requests) called.add(verbOf(c.method, c.path));
      }
    } finally {
      await api.stop();
    }
    expect(called.size).toBeGreaterThanOrEqual(10);
    expect([...called].filter((c) => !granted.has(c))).toEqual([]);
  });
});

function verbOf(method: string, path: string): string {
  const parts = path.split('/').filter(Boolean);
  const [root] = parts;
  const rest = root === 'api' ? parts.slice(2) : parts.slice(3);
  const group = root === 'api' ? '' : parts[1];
  let resource: string;
  let named: boolean;
  if (rest[0] === 'namespaces' && rest.length <= 2) {
    resource = 'namespaces';
    named = rest.length === 2;
  } else if (rest[0] === 'namespaces') {
    resource = rest[2];
    named = rest.length === 4;
  } else {
    resource = rest[0];
    named = rest.length === 2;
  }
  const verb = { GET: named ? 'get' : 'list', POST: 'create', DELETE: 'delete', PATCH: 'patch', PUT: 'update' }[method] ?? method;
  return `${verb} ${group}/${resource}`;
}

describe('README and docs/', () => {
  const readme = read('README.md');
  it('documents every configuration variable in docs/configuration.md, with the default the code uses', () => {
    const page = read('docs/configuration.md');
    for (const o of OPTIONS) {
      const row = page.split('\n').find((l) => l.startsWith(`| \`${o.env}\` |`));
      expect(row).toBeDefined();
      if (o.default && o.env !== 'CRITICAL_NAMESPACES') expect(row).toContain(`\`${o.default}\``);
    }
  });

  const section = docSection;

  it('names every file of src/, scripts/, samples/, bench/ and test/support/ in its Layout', () => {
    const layout = section('Layout');
    const files = ['falco-pod-delete/src', 'scripts', 'samples', 'bench', 'test/support'].flatMap((d) => readdirSync(d).filter((f) => !f.endsWith('.json') || d !== 'samples').map((f) => `${d}/${f}`));
    expect(files.filter((f) => !layout.includes(f.split('/').pop() as string))).toEqual([]);
  });

  it('lists in its Metrics table every metric the function registers, and none it does not', async () => {
    const metrics = new Metrics(false);
    const registered = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
    const table = section('Metrics');
    const documented = [...table.matchAll(/`(falco_pod_delete_[a-z_]+)`/g)].map((m) => m[1]).filter((n) => !n.endsWith('_'));
    expect(registered.filter((n) => !documented.includes(n))).toEqual([]);
    expect([...new Set(documented)].filter((n) => !registered.includes(n))).toEqual([]);
  });

  it('opens with a quick start of at most 15 lines, and a map that leads to every docs/ page; it is a front door of about 250 lines', () => {
    const quick = section('Quick start');
    const block = /```sh\n([\s\S]*?)```/.exec(quick)?.[1] ?? '';
    expect(block.split('\n').filter(Boolean).length).toBeLessThanOrEqual(15);
    expect(readme.indexOf('## Quick start')).toBeLessThan(readme.indexOf('## Run it locally'));
    const map = section('Documentation');
    expect(DOC_FILES.filter((f) => f !== 'README.md' && !map.includes(`](${f})`))).toEqual([]);
    expect(readme.split('\n').length).toBeLessThanOrEqual(260);
  });

  it('has no broken relative link or #anchor in README.md and docs/', () => {
    const broken: string[] = [];
    for (const file of DOC_FILES) {
      const text = read(file).replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#');
        const resolved = path ? join(dirname(file), path) : file;
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${target} (no such file)`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md')) {
          const headings = read(resolved).replace(/```[\s\S]*?```/g, '').split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) => anchorOf(l.replace(/^#+ /, '')));
          if (!headings.includes(anchor)) broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it('shows the two contract commands, and .ci/run runs the test one', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    expect(read('.ci/run')).toMatch(/^npm ci && npm test$/m);
  });
});

describe('Knative manifests', () => {
  const docs = ['deploy/knative/service.yaml', 'deploy/knative/trigger.yaml'].flatMap((f) => YAML.parseAllDocuments(read(f)).map((d) => d.toJS() as Record<string, any>));
  it('runs the Service as a ServiceAccount bound to the ClusterRole from rbac.yaml', () => {
    const svc = docs.find((d) => d.kind === 'Service' && d.apiVersion === 'serving.knative.dev/v1');
    const binding = docs.find((d) => d.kind === 'ClusterRoleBinding');
    expect(binding?.roleRef.name).toBe(rbac[1].metadata.name);
    expect(binding?.subjects[0]).toMatchObject({ name: svc?.spec.template.spec.serviceAccountName, namespace: svc?.metadata.namespace });
    expect(svc?.spec.template.spec.containers[0].command).toEqual(['node', '/home/app/dist/index.mjs']);
  });

  it('has a Trigger on the Falco event type, delivering to that Service', () => {
    const trigger = docs.find((d) => d.kind === 'Trigger');
    expect(trigger?.spec.filter.attributes).toEqual({ type: 'falco.rule.output.v1' });
    expect(trigger?.spec.subscriber.ref).toMatchObject({ kind: 'Service', name: 'falco-pod-delete' });
  });
});

describe('README policy examples', () => {
  it('every YAML block with policy entries loads as a policy', () => {
    const blocks = [...allDocs().matchAll(/```yaml\n(entries:[\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const b of blocks) expect(loadPolicy({ policy: b }).entries.length).toBeGreaterThan(0);
  });
});

describe('secret names', () => {
  // Script variables (name=value) substituted, so "$secret_name" reads as what the script really creates.
  const script = read('scripts/make-kubeconfig.sh');
  const vars = Object.fromEntries([...script.matchAll(/^([a-z_]+)=([A-Za-z0-9-]+)$/gm)].map((m) => [m[1], m[2]]));
  const expand = (t: string) => t.replace(/\$\{?([a-z_]+)\}?/g, (all, v: string) => vars[v] ?? all);
  const texts = { 'stack.yml': read('stack.yml'), 'README.md and docs/': allDocs(), 'scripts/make-kubeconfig.sh': expand(script) };
  const all = Object.values(texts).join('\n');
  const names = (re: RegExp, text = all) => new Set([...text.matchAll(re)].map((m) => m[1]));

  const openfaas = new Set([
    ...names(/\/var\/openfaas\/secrets\/([a-z0-9-]+)/g),
    ...names(/faas-cli secret (?:create|update) "?([a-z0-9-]+)/g),
    ...names(/^\s*#?\s*-\s+([a-z0-9-]+)\s*$/gm, texts['stack.yml'].slice(texts['stack.yml'].indexOf('secrets:'))),
  ]);
  const kubernetes = new Set([
    ...names(/kind: Secret\nmetadata:\n\s+name: ([a-z0-9-]+)/g),
    ...names(/kubectl (?:get|delete) secret(?: -n [a-z-]+)? "?([a-z0-9-]+)/g),
  ]);

  it('finds the names it checks', () => {
    expect([...openfaas].sort()).toEqual(['falco-pod-delete-caller-token', 'falco-pod-delete-kubeconfig']);
    expect(kubernetes.has('falco-pod-delete-sa-token')).toBe(true);
  });

  it('no name is both an OpenFaaS secret and a Kubernetes Secret the scripts make', () => {
    expect([...openfaas].filter((n) => kubernetes.has(n))).toEqual([]);
  });

  it('each OpenFaaS secret feeds exactly one setting', () => {
    for (const n of openfaas) {
      const settings = names(new RegExp(`([A-Z_]+)[=: ]+/var/openfaas/secrets/${n}\\b`, 'g'));
      expect([n, [...settings]]).toEqual([n, [expect.any(String)]]);
    }
  });
});

describe('guardrails.yaml', () => {
  const docs = YAML.parseAllDocuments(read('guardrails.yaml')).map((d) => d.toJS() as Record<string, any>);
  const params = docs.find((d) => d.kind === 'ConfigMap')?.data as Record<string, string>;
  const stack = YAML.parse(read('stack.yml')) as { functions: Record<string, { environment: Record<string, string> }> };
  const env = stack.functions['falco-pod-delete'].environment;
  const defaultOf = (name: string) => OPTIONS.find((o) => o.env === name)?.default;
  const sa = rbac.find((d: Record<string, any>) => d.kind === 'ServiceAccount') as Record<string, any>;

  it('guards the namespaces stack.yml configures, one list for both', () => {
    expect(params.criticalNamespaces.split(',')).toEqual(env.CRITICAL_NAMESPACES.split(','));
  });

  it('uses the function\'s opt-out and quarantine labels and its own namespace and identity', () => {
    expect(params.optOutLabel).toBe(env.OPT_OUT_LABEL ?? defaultOf('OPT_OUT_LABEL'));
    expect(params.quarantineLabel).toBe(env.QUARANTINE_LABEL ?? defaultOf('QUARANTINE_LABEL'));
    expect(params.ownNamespace).toBe(sa.metadata.namespace);
    expect(params.identities.split(',')).toEqual([`system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}`]);
  });

  it('fails closed and binds its parameters', () => {
    const policy = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy');
    const binding = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding');
    expect(policy?.spec.failurePolicy).toBe('Fail');
    expect(binding?.spec).toMatchObject({ policyName: policy?.metadata.name, validationActions: ['Deny'], paramRef: { name: 'falco-pod-delete-guardrails', namespace: sa.metadata.namespace, parameterNotFoundAction: 'Deny' } });
  });
});

describe('the image', () => {
  const dockerfile = read('template/node18-ts-middleware/Dockerfile');
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  it('runs as a numeric non-root user in its final stage (a kubelet can verify runAsNonRoot only for a number)', () => {
    const users = [...finalStage.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
    expect(users).toHaveLength(1);
    expect(users[0]).toMatch(/^[1-9]\d*(:\d+)?$/);
  });

  it('uses of-watchdog 0.11.6, and stack.yml asks for a read-only root filesystem', () => {
    expect(dockerfile).toMatch(/^ARG WATCHDOG_VERSION=0\.11\.6$/m);
    expect((YAML.parse(read('stack.yml')) as { functions: Record<string, { readonly_root_filesystem?: boolean }> }).functions['falco-pod-delete'].readonly_root_filesystem).toBe(true);
  });
});
