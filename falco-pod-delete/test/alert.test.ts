import { AlertError, containerIdOf, field, invalidNameReason, normalizePriority, parseAlert, targetOf } from '../src/alert.js';

const base = {
  output: 'A shell was spawned in a container with an attached terminal',
  priority: 'Critical',
  rule: 'Terminal shell in container',
  time: '2023-05-25T13:44:05.478445995Z',
  output_fields: { 'container.id': 'ee97d9c4186f', 'k8s.ns.name': 'default', 'k8s.pod.name': 'kubecon' },
};

describe('parseAlert', () => {
  it('normalises priorities case-insensitively, with Info meaning Informational', () => {
    expect(parseAlert({ ...base, priority: 'CRITICAL' }).priority).toBe('critical');
    expect(parseAlert({ ...base, priority: 'Info' }).priority).toBe('informational');
    expect(parseAlert({ ...base, priority: 'warn' }).priority).toBe('warning');
    expect(normalizePriority('Debug')).toBe('debug');
    expect(normalizePriority('severe')).toBeUndefined();
  });

  it('keeps nanosecond times as dates to the millisecond', () => {
    expect(parseAlert(base).time.toISOString()).toBe('2023-05-25T13:44:05.478Z');
  });

  it('tolerates missing uuid, hostname, source and tags, and null tags', () => {
    const a = parseAlert({ ...base, tags: null });
    expect(a).toMatchObject({ uuid: undefined, hostname: undefined, source: undefined, tags: [] });
  });

  it('lists every problem at once', () => {
    try {
      parseAlert({ priority: 7, time: 'now' });
      throw new Error('expected an AlertError');
    } catch (e) {
      expect(e).toBeInstanceOf(AlertError);
      const problems = (e as AlertError).problems.join('\n');
      expect(problems).toMatch(/missing "rule"/);
      expect(problems).toMatch(/missing "output"/);
      expect(problems).toMatch(/priority must be string/);
    }
  });

  it('does not treat evt.time as anything but an opaque field (it exceeds safe integers)', () => {
    const a = parseAlert(JSON.parse('{"output":"x","priority":"Notice","rule":"r","time":"2021-01-14T23:39:44.834631763Z","output_fields":{"evt.time":1610667584834631763}}'));
    expect(Number.isSafeInteger(a.fields['evt.time'])).toBe(false);
  });
});

describe('field', () => {
  it('treats null, "" and <NA> as absent, and only own properties count', () => {
    const a = parseAlert({ ...base, output_fields: { a: null, b: '', c: '<NA>', d: 'x' } });
    expect([field(a, 'a'), field(a, 'b'), field(a, 'c'), field(a, 'd')]).toEqual([undefined, undefined, undefined, 'x']);
    expect(field(a, 'toString')).toBeUndefined();
    expect(field(a, '__proto__')).toBeUndefined();
  });
});

describe('targetOf', () => {
  const withFields = (fields: Record<string, unknown>, extra: Record<string, unknown> = {}) => parseAlert({ ...base, ...extra, output_fields: fields });

  it('reads k8s.pod.name and k8s.ns.name first', () => {
    expect(targetOf(withFields({ 'k8s.pod.name': 'p', 'k8s.ns.name': 'n' }))).toEqual({ kind: 'pod', pod: { namespace: 'n', name: 'p' }, via: 'k8s' });
  });

  it('falls back to the k8smeta plugin fields', () => {
    expect(targetOf(withFields({ 'k8smeta.pod.name': 'p', 'k8smeta.ns.name': 'n', 'k8s.pod.name': null, 'k8s.ns.name': '<NA>' }))).toMatchObject({ kind: 'pod', via: 'k8smeta' });
  });

  it('reads ka.target.* for k8s_audit alerts about pods only', () => {
    const pods = withFields({ 'ka.target.name': 'p', 'ka.target.namespace': 'n', 'ka.target.resource': 'pods' }, { source: 'k8s_audit' });
    expect(targetOf(pods)).toMatchObject({ kind: 'pod', pod: { namespace: 'n', name: 'p' }, via: 'k8s_audit' });
    const sa = withFields({ 'ka.target.name': 'p', 'ka.target.namespace': 'n', 'ka.target.resource': 'serviceaccounts' }, { source: 'k8s_audit' });
    expect(targetOf(sa).kind).toBe('none');
  });

  it('is ambiguous when sources disagree or only half a reference is present', () => {
    expect(targetOf(withFields({ 'k8s.pod.name': 'a', 'k8s.ns.name': 'n', 'k8smeta.pod.name': 'b', 'k8smeta.ns.name': 'n' })).kind).toBe('ambiguous');
    expect(targetOf(withFields({ 'k8s.pod.name': 'a' })).kind).toBe('ambiguous');
    expect(targetOf(withFields({ 'k8s.pod.name': 5, 'k8s.ns.name': 'n' })).kind).toBe('ambiguous');
  });

  it('names host events as such', () => {
    expect(targetOf(withFields({ 'container.id': 'host', 'k8s.pod.name': null, 'k8s.ns.name': null }))).toEqual({ kind: 'none', reason: 'host event: no pod involved' });
  });

  it('ignores inherited properties', () => {
    const fields = Object.create({ 'k8s.pod.name': 'p', 'k8s.ns.name': 'n' }) as Record<string, unknown>;
    expect(targetOf(withFields(fields)).kind).toBe('none');
  });
});

describe('names', () => {
  it.each([
    [{ namespace: 'default', name: 'web-7d4b9c-x2x1z' }, undefined],
    [{ namespace: 'default', name: 'web.v1' }, undefined],
    [{ namespace: 'Default', name: 'web' }, /namespace/],
    [{ namespace: 'default', name: 'web/..' }, /pod name/],
    [{ namespace: 'default', name: '-web' }, /pod name/],
    [{ namespace: 'a'.repeat(64), name: 'web' }, /namespace/],
    [{ namespace: 'default', name: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}` }, undefined],
    [{ namespace: 'default', name: 'a'.repeat(254) }, /pod name/],
  ])('checks %j', (pod, expected) => {
    const r = invalidNameReason(pod);
    if (expected === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(expected);
  });

  it('takes a container id only when it is hex', () => {
    expect(containerIdOf(parseAlert(base))).toBe('ee97d9c4186f');
    expect(containerIdOf(parseAlert({ ...base, output_fields: { 'container.id': 'host' } }))).toBeUndefined();
  });
});
