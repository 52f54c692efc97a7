// Lint: type-aware async rules, no import cycles, and the plane boundaries of style.md:
// server/ and worker/ never import each other; agent/ imports only protocol/ and lib/;
// protocol/, lib/ and llm/ (model routing, shared by worker and server) import no plane at all;
// what the agent bundle holds (agent/, protocol/, lib/) imports zod as a namespace.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

const planes = ['server', 'worker', 'agent', 'cli'];
const forbid = (...names) => ({
  patterns: names.map((name) => ({
    group: [`**/${name}/*`, `**/${name}`, `../${name}/**`, `../../${name}/**`, `../../../${name}/**`],
    message: `This folder must not import src/${name}/ (see docs/architecture.md, "Layout").`,
  })),
});
// What the agent runtime imports is bundled into one file (scripts/bundle-agent.js). zod's named
// `z` export keeps all of zod in it (400 KB of locales alone); the namespace import lets esbuild
// drop what the agent does not use.
const zodAsNamespace = [
  'error',
  {
    selector: "ImportDeclaration[source.value='zod'] > ImportSpecifier[imported.name='z']",
    message: "Write `import * as z from 'zod'`: the named `z` keeps all of zod in the agent bundle (scripts/bundle-agent.js).",
  },
];

export default tseslint.config(
  // examples/ holds sample repositories for the agent to work on: their code is not ours.
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'web/dist/**', 'bin/**', '.airlock/**', 'examples/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The JS entry points (benchmarks, scripts) are linted outside the TypeScript project;
        // there are more of them than the default cap of 8.
        projectService: { allowDefaultProject: ['*.js', 'scripts/*.js', 'bench/*.js'], maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 32 },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/require-await': 'off',
      'import-x/no-cycle': ['error', { maxDepth: 10 }],
    },
  },
  { files: ['src/server/**'], rules: { 'no-restricted-imports': ['error', forbid('worker', 'agent', 'cli')] } },
  { files: ['src/worker/**'], rules: { 'no-restricted-imports': ['error', forbid('server', 'agent', 'cli')] } },
  { files: ['src/agent/**'], rules: { 'no-restricted-imports': ['error', forbid('server', 'worker', 'cli')] } },
  { files: ['src/protocol/**', 'src/lib/**', 'src/llm/**'], rules: { 'no-restricted-imports': ['error', forbid(...planes)] } },
  { files: ['src/agent/**', 'src/protocol/**', 'src/lib/**'], rules: { 'no-restricted-syntax': zodAsNamespace } },
  {
    files: ['test/**', 'bench/**', '*.js', 'scripts/**'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-base-to-string': 'off',
    },
  },
);
