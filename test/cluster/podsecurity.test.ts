// Every shipped pod template is admitted where Pod Security "restricted" is enforced, by the real API server.
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import YAML from 'yaml';
import { Admin, describeCluster } from '../support/cluster.js';

const docs = (f: string) => YAML.parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as Record<string, any>);

/** The pod the platform would create from each manifest (the fields it fills in, named here). */
const templates: Array<[string, () => k8s.V1PodSpec]> = [
  ['Knative Service', () => {
    const spec = docs('deploy/knative/service.yaml').find((d) => d.kind === 'Service' && d.apiVersion === 'serving.knative.dev/v1')?.spec.template.spec;
    const { timeoutSeconds: _t, ...pod } = spec;
    // Knative names the container and points the probe at the container port.
    const port = (c: k8s.V1Container) => c.ports?.[0]?.containerPort ?? 8080;
    return { ...pod, containers: pod.containers.map((c: k8s.V1Container) => ({ ...c, name: c.name ?? 'user-container', readinessProbe: c.readinessProbe && { ...c.readinessProbe, httpGet: { ...c.readinessProbe.httpGet, port: port(c) } } })) };
  }],
  ['Kubeless Function', () => {
    const spec = docs('deploy/kubeless/function.yaml').find((d) => d.kind === 'Function')?.spec.deployment.spec.template.spec;
    return { ...spec, containers: spec.containers.map((c: k8s.V1Container) => ({ ...c, name: c.name ?? 'falco-pod-delete', image: c.image ?? 'kubeless/nodejs:14' })) };
  }],
];

describeCluster('Pod Security "restricted" on the real API server', () => {
  let admin: Admin;
  let ns: string;
  beforeAll(async () => {
    admin = new Admin();
    ns = await admin.namespace('restricted', { 'pod-security.kubernetes.io/enforce': 'restricted' });
    for (const sa of ['falco-pod-delete']) await admin.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  });

  it.each(templates)('admits the %s pod template', async (_name, spec) => {
    const created = await admin.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'fpd' }, spec: spec() }, dryRun: 'All' });
    expect(created.metadata?.name).toBe('fpd');
  });

  it('refuses the same pod without its securityContext (the namespace really enforces)', async () => {
    const spec = templates[0][1]();
    const bare = { ...spec, securityContext: undefined, containers: spec.containers.map((c) => ({ ...c, securityContext: undefined })) };
    await expect(admin.core.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'fpd' }, spec: bare }, dryRun: 'All' })).rejects.toMatchObject({ code: 403 });
  });
});
