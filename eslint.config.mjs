// The linter `npm test` runs with zero warnings: typescript-eslint's type-aware rules over the
// TypeScript (src, test, bench), ESLint's recommended rules over the plain JavaScript (the CLI's
// launcher, scripts, the console's browser code, jest's config and test helpers).
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'coverage/**', 'test-artifacts/**'] },
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,

  // TypeScript: every file belongs to tsconfig.json, which the type-aware rules read.
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A leading underscore names a parameter that a signature needs but the body does not (Express
      // tells an error handler by its four parameters); a rest sibling names what an object is rid of.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // An async function without await is how a synchronous body (node:sqlite, the in-memory fakes)
      // keeps a promise interface: `async` turns its throw into a rejection, as the callers expect.
      '@typescript-eslint/require-await': 'off',
      // Passing on what a failed write threw, as it was thrown, is the point of a batch's reject.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // The rule's own default lets Error, URL and URLSearchParams through (their text is what their
      // toString gives); Node declares URL and URLSearchParams in its `url` module, not in the lib.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allow: [{ from: 'lib', name: ['Error', 'URL', 'URLSearchParams'] }, { from: 'package', package: 'url', name: ['URL', 'URLSearchParams'] }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // @types/jest types the asymmetric matchers (expect.any, objectContaining, stringContaining) as
      // `any`, and the tests put them inside the shapes they compare.
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },

  // Plain JavaScript run by Node: CommonJS (package.json has no "type").
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    rules: {
      // As in the TypeScript: a rest sibling names what an object is rid of.
      'no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },
  // The sandbox console's code runs in the browser, as a plain script.
  {
    files: ['src/sandbox/console/**/*.js'],
    languageOptions: { sourceType: 'script', globals: globals.browser },
  },
);
