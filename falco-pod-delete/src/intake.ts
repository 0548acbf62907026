// Intake: a delivery (headers + body) from any platform to a validated alert, or the reason it is refused.
import { type Alert, AlertError, parseAlert } from './alert.js';
import { type EnvelopeKind, type Headers, unwrap } from './envelope.js';

export type Intake =
  | { ok: true; kind: EnvelopeKind; eventId: string | undefined; alert: Alert }
  | { ok: false; kind: EnvelopeKind | 'unknown'; eventId: string | undefined; code: 'bad-envelope' | 'invalid-alert'; reason: string; status: 400 | 415 };

export async function intake(headers: Headers, body: unknown): Promise<Intake> {
  const unwrapped = await unwrap(headers, body);
  if (!unwrapped.ok) return { ok: false, kind: unwrapped.kind, eventId: undefined, code: 'bad-envelope', reason: unwrapped.reason, status: unwrapped.status };
  try {
    return { ok: true, kind: unwrapped.kind, eventId: unwrapped.eventId, alert: parseAlert(unwrapped.alert) };
  } catch (e) {
    if (e instanceof AlertError) return { ok: false, kind: unwrapped.kind, eventId: unwrapped.eventId, code: 'invalid-alert', reason: e.message, status: 400 };
    throw e;
  }
}
