import { unwrap } from '../src/envelope.js';

const alert = { output: 'o', priority: 'Notice', rule: 'Terminal shell in container', time: '2026-01-01T00:00:00Z', output_fields: {} };
const ce = (over: Record<string, string> = {}) => ({
  'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': 'a1', 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1', ...over,
});

describe('unwrap', () => {
  it('takes a plain alert as is (OpenFaaS, webhook, Falco http_output)', async () => {
    expect(await unwrap({ 'content-type': 'application/json' }, alert)).toEqual({ ok: true, kind: 'plain', alert, eventId: undefined });
  });

  it('recognises Falcosidekick Kubeless headers and the Kubeless event envelope', async () => {
    expect(await unwrap({ 'event-type': 'falco', 'event-id': 'e1' }, alert)).toMatchObject({ ok: true, kind: 'kubeless', eventId: 'e1' });
    expect(await unwrap({}, { data: alert, 'event-id': 'e2' })).toMatchObject({ ok: true, kind: 'kubeless', alert, eventId: 'e2' });
  });

  it('refuses a body that is both an envelope and an alert', async () => {
    expect(await unwrap({}, { ...alert, data: alert })).toMatchObject({ ok: false, status: 400, reason: expect.stringMatching(/ambiguous/) });
  });

  it('reads binary-mode CloudEvents with the current and the old Falcosidekick source', async () => {
    expect(await unwrap(ce(), alert)).toMatchObject({ ok: true, kind: 'cloudevent', alert, eventId: 'a1' });
    expect(await unwrap(ce({ 'ce-source': 'falco.org' }), alert)).toMatchObject({ ok: true, kind: 'cloudevent' });
  });

  it('reads structured-mode CloudEvents', async () => {
    const body = { specversion: '1.0', id: 's1', source: 'https://falco.org', type: 'falco.rule.output.v1', datacontenttype: 'application/json', data: alert };
    expect(await unwrap({ 'content-type': 'application/cloudevents+json' }, body)).toMatchObject({ ok: true, kind: 'cloudevent', alert, eventId: 's1' });
  });

  it('declines other event types and sources, and malformed events', async () => {
    expect(await unwrap(ce({ 'ce-type': 'dev.knative.sources.ping' }), alert)).toMatchObject({ ok: false, status: 400, reason: expect.stringMatching(/not falco.rule.output.v1/) });
    expect(await unwrap(ce({ 'ce-source': 'https://evil.example' }), alert)).toMatchObject({ ok: false, reason: expect.stringMatching(/not Falcosidekick's/) });
    expect(await unwrap(ce({ 'ce-specversion': '9.9' }), alert)).toMatchObject({ ok: false, reason: expect.stringMatching(/unsupported CloudEvents specversion/) });
    const noId: Record<string, string> = ce();
    delete noId['ce-id'];
    expect(await unwrap(noId, alert)).toMatchObject({ ok: false, status: 400, reason: expect.stringMatching(/malformed CloudEvent/) });
    expect(await unwrap(ce(), 'not json')).toMatchObject({ ok: false });
  });
});
