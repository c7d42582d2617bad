// Lint rules: typescript-eslint's recommended set, type-aware where it catches real bugs
// (floating promises, misused promises), plus the few conventions CONVENTIONS.md asks for.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.dependency-cruiser.cjs', 'dist/**', 'node_modules/**', 'coverage/**', '.bench-out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']", message: 'Use the injected Rng (src/lib/rng.ts)' },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/agent/**', 'src/cli/**', 'src/api/**', 'src/lib/clock.ts', 'src/lib/logger.ts'],
    rules: {
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Take a Clock (src/lib/clock.ts); only src/agent drives real time' },
        { name: 'setInterval', message: 'Take a Clock (src/lib/clock.ts); only src/agent drives real time' },
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Take a Clock (src/lib/clock.ts)' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
