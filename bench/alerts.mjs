// The alert the load generators send: a Falcosidekick-shaped "Terminal shell in container" for a given pod,
// with the container id the stand-in API gives that pod (so the function's verification passes).
export function containerIdFor(namespace, name) {
  let hex = '';
  for (let i = 0; hex.length < 64; i++) hex += Buffer.from(`${namespace}/${name}:${i}`).toString('hex');
  return hex.replace(/[^0-9a-f]/g, '').slice(0, 12);
}

let n = 0;
export function alertFor(kind, pod) {
  const ns = kind === 'declined' ? 'kube-system' : 'default';
  n++;
  return JSON.stringify({
    uuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    output: `Critical A shell was spawned in a container with an attached terminal (k8s.ns=${ns} k8s.pod=${pod})`,
    priority: 'Critical',
    rule: 'Terminal shell in container',
    time: new Date().toISOString(),
    source: 'syscall',
    hostname: 'worker-1',
    tags: ['container', 'shell', 'mitre_execution'],
    output_fields: { 'container.id': containerIdFor(ns, pod), 'k8s.ns.name': ns, 'k8s.pod.name': pod, 'proc.name': 'sh', 'user.name': 'root' },
  });
}
