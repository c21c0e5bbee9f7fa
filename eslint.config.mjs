// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'out/',
      'node_modules/',
      'test-results/',
      '.octask-cache/',
      'test/vscode/workspace/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
      // Only extension/client may talk to VS Code; everything else must run without it.
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'vscode', message: 'Only extension/client/ may import vscode.' }] },
      ],
    },
  },
  {
    // The extension and its suite in a real VS Code.
    files: ['extension/client/**/*.ts', 'test/vscode/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // shared/ is the protocol: it imports nothing of ours outside itself.
    files: ['shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['vscode', 'ws', 'bonjour-service'],
          patterns: ['../agent/*', '../extension/*', '../cli/*'],
        },
      ],
    },
  },
  ...[
    ['agent', ['../extension/*', '../../extension/*']],
    ['extension/dispatcher', ['../../agent/*', '../../../agent/*']],
  ].map(([dir, others]) => ({
    // agent/ and the dispatcher share only shared/; the CLI sits on top of both.
    files: [`${dir}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [{ name: 'vscode', message: 'Only extension/client/ may import vscode.' }],
          patterns: [
            {
              group: [...others, '../cli/*', '../../cli/*'],
              message: 'agent/ and extension/dispatcher/ import only shared/.',
            },
          ],
        },
      ],
    },
  })),
  {
    files: ['bench/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts', '**/*.test.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
  },
);
