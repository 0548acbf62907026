// Evidence before the action, which it destroys: the pod's manifest and, when the policy entry asks, the last
// lines of each container's log, each as its own bounded JSON record on stdout. Collecting never blocks
// containment: what cannot be had within its own short deadline is reported missing, with why.
import { Deadline } from './deadline.js';
import type { Kube, PodSnapshot } from './kube/index.js';
import type { WorkloadFacts } from './outcome.js';
import type { EvidenceRules } from './policy.js';

/** A record stays well below the watchdog's 64 KiB log line (the template raises it to 256 KiB). */
const RECORD_MAX = 48 * 1024;
const LOG_TIMEOUT_MS = 2000;

export type EvidenceSink = (record: Record<string, unknown>) => void;

export class EvidenceCollector {
  constructor(private readonly kube: Kube, private readonly write: EvidenceSink) {}

  async collect(pod: PodSnapshot, workload: WorkloadFacts, rules: EvidenceRules, alertUuid: string | undefined, deadline: Deadline): Promise<{ written: string[]; missing: string[] }> {
    const base = { evidence: true, uuid: alertUuid, namespace: pod.namespace, pod: pod.name, podUid: pod.uid };
    const written: string[] = [];
    const missing: string[] = [];
    const manifest = { ...base, kind: 'manifest', workload, manifest: pod.manifest };
    this.write(JSON.stringify(manifest).length <= RECORD_MAX ? manifest : { ...base, kind: 'manifest', workload, truncated: true, manifest: { metadata: pod.manifest.metadata } });
    written.push('manifest');
    if (!rules.logs) return { written, missing };
    for (const container of pod.containers) {
      const own = new Deadline(Math.max(1, Math.min(LOG_TIMEOUT_MS, deadline.remaining() / 4)));
      try {
        const text = await this.kube.readPodLog(pod, container, rules.logLines, rules.logBytes, own);
        const cut = text.length > rules.logBytes;
        this.write({ ...base, kind: 'log', container, tailLines: rules.logLines, truncated: cut, text: cut ? text.slice(-rules.logBytes) : text });
        written.push(`log:${container}`);
      } catch (e) {
        missing.push(`log:${container}: ${(e as Error).message.slice(0, 200)}`);
      } finally {
        own.dispose();
      }
    }
    return { written, missing };
  }
}
