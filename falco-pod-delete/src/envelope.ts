// Which platform delivered the alert, and the alert inside: OpenFaaS/webhook (plain), Kubeless, CloudEvents.
import type { CloudEvent } from 'cloudevents';
import { quoted } from './alert.js';

export type EnvelopeKind = 'plain' | 'kubeless' | 'cloudevent';

export type Headers = Record<string, string | string[] | undefined>;

export type Unwrapped =
  | { ok: true; kind: EnvelopeKind; alert: unknown; eventId?: string }
  | { ok: false; kind: EnvelopeKind | 'unknown'; status: 400 | 415; reason: string };

export const FALCO_EVENT_TYPE = 'falco.rule.output.v1';
/** Falcosidekick's CloudEvent source: `https://falco.org` since 2023, `falco.org` before. */
export const FALCO_EVENT_SOURCES = ['https://falco.org', 'falco.org'];

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(o: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

async function fromCloudEvent(headers: Headers, body: unknown): Promise<Unwrapped> {
  let event: CloudEvent<unknown>;
  // Loaded on the first CloudEvent only: OpenFaaS deployments never pay for the SDK.
  const { HTTP } = await import('cloudevents');
  try {
    const parsed = HTTP.toEvent({ headers, body: body ?? '' });
    if (Array.isArray(parsed)) return { ok: false, kind: 'cloudevent', status: 400, reason: 'CloudEvent batches are not supported: send one event per request' };
    event = parsed as CloudEvent<unknown>;
  } catch (e) {
    const errors = (e as { errors?: unknown[] }).errors;
    const detail = Array.isArray(errors) && errors.length > 0 ? JSON.stringify(errors).slice(0, 300) : (e as Error).message;
    return { ok: false, kind: 'cloudevent', status: 400, reason: `malformed CloudEvent: ${detail}` };
  }
  if (event.specversion !== '1.0') {
    return { ok: false, kind: 'cloudevent', status: 400, reason: `unsupported CloudEvents specversion ${quoted(event.specversion, 32)}: 1.0 is supported` };
  }
  if (event.type !== FALCO_EVENT_TYPE) {
    return { ok: false, kind: 'cloudevent', status: 400, reason: `CloudEvent type ${quoted(event.type)} is not ${FALCO_EVENT_TYPE}: not a Falco alert` };
  }
  if (!FALCO_EVENT_SOURCES.includes(event.source)) {
    return { ok: false, kind: 'cloudevent', status: 400, reason: `CloudEvent source ${quoted(event.source)} is not Falcosidekick's (${FALCO_EVENT_SOURCES.join(' or ')})` };
  }
  let data: unknown = event.data;
  if (data === undefined && event.data_base64) data = Buffer.from(event.data_base64, 'base64').toString('utf8');
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      data = JSON.parse(data.toString());
    } catch {
      return { ok: false, kind: 'cloudevent', status: 400, reason: 'CloudEvent data is not JSON' };
    }
  }
  if (!isRecord(data)) return { ok: false, kind: 'cloudevent', status: 400, reason: 'CloudEvent carries no alert in its data' };
  return { ok: true, kind: 'cloudevent', alert: data, eventId: event.id };
}

/** Headers and content type decide first; the body's shape second; a body that fits two shapes is refused. */
export async function unwrap(headers: Headers, body: unknown): Promise<Unwrapped> {
  const contentType = (header(headers, 'content-type') ?? '').toLowerCase();
  if (header(headers, 'ce-specversion') !== undefined || contentType.startsWith('application/cloudevents')) {
    return fromCloudEvent(headers, body);
  }
  const kubelessHeaders = header(headers, 'event-type') === 'falco';
  if (!isRecord(body)) {
    return { ok: false, kind: kubelessHeaders ? 'kubeless' : 'unknown', status: 400, reason: 'the body must be a JSON object (a Falco alert)' };
  }
  if (own(body, 'data')) {
    if (own(body, 'rule') || own(body, 'output')) {
      return { ok: false, kind: 'unknown', status: 400, reason: 'ambiguous body: it has both a Kubeless "data" envelope and alert fields' };
    }
    if (!isRecord(body.data)) return { ok: false, kind: 'kubeless', status: 400, reason: 'Kubeless envelope "data" must be the alert object' };
    const eventId = body['event-id'];
    return { ok: true, kind: 'kubeless', alert: body.data, eventId: typeof eventId === 'string' ? eventId : undefined };
  }
  return { ok: true, kind: kubelessHeaders ? 'kubeless' : 'plain', alert: body, eventId: header(headers, 'event-id') };
}
