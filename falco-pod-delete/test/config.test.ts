import { ConfigError, DEFAULT_CRITICAL_NAMESPACES, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('refuses an ACTION_LIMIT the shared budget Lease cannot record, and allows it with COORDINATION=single', () => {
    expect(() => loadConfig({ ACTION_LIMIT: '5001' })).toThrow(/ACTION_LIMIT must be at most 5000 with COORDINATION=cluster/);
    expect(loadConfig({ ACTION_LIMIT: '5001', COORDINATION: 'single' }).actionLimit).toBe(5001);
    expect(loadConfig({ ACTION_LIMIT: '5000' }).actionLimit).toBe(5000);
  });

  it('has safe defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ criticalNamespaces: DEFAULT_CRITICAL_NAMESPACES, dryRun: false, maxAlertAgeSeconds: 300, actionLimit: 20, actionWindowSeconds: 60, alertDeadlineMs: 10000, gracePeriodSeconds: 1 });
  });

  it.each([
    ['CRITICAL_NAMESPACES', 'kube-system,Bad_NS', /CRITICAL_NAMESPACES holds "Bad_NS"/],
    ['DRY_RUN', 'maybe', /DRY_RUN must be true or false/],
    ['GRACE_PERIOD_SECONDS', '-5', /GRACE_PERIOD_SECONDS must be a whole number/],
    ['ACTION_LIMIT', 'many', /ACTION_LIMIT must be a whole number/],
    ['MAX_ALERT_AGE_SECONDS', '0', /MAX_ALERT_AGE_SECONDS must be between 1/],
    ['OPT_OUT_LABEL', 'not a label!', /OPT_OUT_LABEL must be a Kubernetes label key/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/],
    ['COORDINATION', 'multi', /COORDINATION must be cluster or single, got "multi"/],
    ['RESPONSE_MODE', 'later', /RESPONSE_MODE must be sync or async/],
    ['AUTH_TOKEN_FILE', '/nonexistent/token', /AUTH_TOKEN_FILE names \/nonexistent\/token, which cannot be read/],
  ])('stops on an invalid %s, naming it', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });
});
