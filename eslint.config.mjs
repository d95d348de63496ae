// Lint: ESLint's and typescript-eslint's recommended rules over src, test and bench
// (type checking itself is `tsc --strict`). Part of `npm test`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.cts', '**/*.mjs'],
    rules: {
      // A leading underscore marks a value kept on purpose (destructured away, unused parameter).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Plain JavaScript and CommonJS files run on Node: its globals, and require() where CommonJS is the point.
    files: ['**/*.mjs', '**/*.cjs', '**/*.cts'],
    languageOptions: {
      globals: { process: 'readonly', require: 'readonly', module: 'writable', performance: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', __dirname: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The web console's browser code (bundled by scripts/build-ui.mjs): browser globals, no Node.
    files: ['ui/**/*.ts'],
    languageOptions: {
      globals: {
        window: 'readonly', document: 'readonly', location: 'readonly', history: 'readonly', navigator: 'readonly', console: 'readonly',
        fetch: 'readonly', WebSocket: 'readonly', crypto: 'readonly', atob: 'readonly', btoa: 'readonly', URL: 'readonly',
        URLSearchParams: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', requestAnimationFrame: 'readonly',
        setTimeout: 'readonly', clearTimeout: 'readonly', Event: 'readonly', Node: 'readonly',
      },
    },
  },
);
