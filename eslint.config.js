import js from '@eslint/js';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'resources/demo/', '.delst-cache/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['renderer/**/*.{ts,svelte}'],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: tseslint.parser } },
  },
  {
    // Layering: core knows nothing of the shells or the UI.
    files: ['core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['electron', 'electron/*'], message: 'core/ must not depend on Electron' },
            { group: ['svelte', 'svelte/*', 'openseadragon'], message: 'core/ must not depend on the UI' },
            {
              group: ['**/server/**', '**/electron/**', '**/renderer/**', '**/cli/**'],
              message: 'core/ is the lowest layer',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['renderer/**/*.{ts,svelte}'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            // Re-including a file needs its folder re-included first (gitignore rules).
            {
              group: ['**/core/**', '!**/core/api', '!**/core/api/api.js'],
              message: 'the renderer knows only the API types',
            },
          ],
        },
      ],
    },
  },
);
