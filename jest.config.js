// Unit tests beside the handler (they also run inside the image build) and integration tests in test/.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/falco-pod-delete/test', '<rootDir>/test'],
  extensionsToTreatAsEsm: ['.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }],
  },
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testTimeout: 30000,
  // A plain clone's suites mostly wait on timers and loopback sockets: one worker per core (jest's default
  // leaves one core idle, which on 2 cores doubles the run). With the real control plane (KUBEBUILDER_ASSETS)
  // jest's default stands, so that the suites sharing one API server do not crowd it.
  ...(process.env.KUBEBUILDER_ASSETS ? {} : { maxWorkers: '100%' }),
  // A real kube-apiserver and etcd for the suites in test/cluster/ (skipped, with one line, without KUBEBUILDER_ASSETS).
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  // Every process a test file started is stopped when the file ends (test/support/children.ts).
  setupFilesAfterEnv: ['<rootDir>/test/support/after-each-file.ts'],
};
