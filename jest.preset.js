// Shared jest settings: TypeScript is transformed by swc (fast, no type-check; `tsc` in
// `build` is the type-check), tests live beside the code as *.test.ts.
// Node 20 is what these machines have; the AWS SDK versions are pinned in the lockfile.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  // Tests and hooks start real processes (redis-server, S3 servers, the logger server): on a
  // loaded 2-core machine a start alone can pass jest's default 5 s. Tests that need longer say so.
  testTimeout: 30_000,
};
