// The worker's model routing: one ExecutionModelRoute per execution (BYOLLM or the control plane).
export { ExecutionModelRoute, type ModelHandler } from './route.js';
export { controlPlaneProvider, httpBase, CONTROL_PLANE_LLM_PREFIX } from './control-plane.js';
