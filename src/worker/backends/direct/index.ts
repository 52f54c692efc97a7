/**
 * The direct backend (see backend.ts): each execution runs as host processes in its own
 * workspace under `workspaceRoot`.
 */
export { DirectBackend, type DirectBackendOptions } from './backend.js';
export { taskEnvironment, workspaceLayout, gitconfigText, type WorkspaceLayout, type WorkspaceMeta } from './workspace.js';
