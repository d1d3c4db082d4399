// ESLint flat config. TypeScript in packages/*/{src,test} and apps/*/{src,test} is linted with type
// information (each package's tsconfig.json, found by the project service), so promise rules such as
// no-floating-promises see real types. Plain JavaScript (jest configs, bench/, scripts/, test fixtures)
// gets the JavaScript rules only. `tsc` stays the type check: `pnpm lint` runs both, plus prettier.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/coverage/**', '**/.turbo/**', 'log/**', '.dev/**'] },
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { ecmaVersion: 2022, globals: { ...globals.node } },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
  },
  {
    files: ['packages/*/{src,test}/**/*.ts', 'apps/*/{src,test}/**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Promises: the rules this linter is here for.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `_`-prefixed parameters are unused on purpose (callbacks with a fixed signature); a rest
      // sibling drops the keys it names (`const { time, ...rest } = line`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // Off: `as` casts on Redis replies (sendCommand returns a union of every reply shape) and on
      // createClient() say which shape the code expects; the rule calls many of them unnecessary
      // because the cast also drives generic inference, and removing them obscures the reply type.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Off: `async` on a function without `await` is used on purpose so that it returns a promise
      // (a thrown error becomes a rejection), e.g. the soak's fault-healing callbacks.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests read JSON.parse output and use jest's asymmetric matchers (expect.objectContaining(),
    // expect.any()), which are typed `any`; the assertions themselves check the shape. Production
    // code keeps the no-unsafe-* rules.
    files: ['packages/*/{src,test}/**/*.test.ts', 'packages/*/test/**/*.ts', 'apps/*/{src,test}/**/*.test.ts', 'apps/*/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
