/**
 * The task gateway (see gateway.ts): one per execution, started by the execution runner at the
 * socket path the backend prepared, closed when the execution has ended.
 */
export { TaskGateway, MAX_CONTROL_WAIT_MS, type TaskGatewayOptions, type FollowUpMessageInput } from './gateway.js';
export { MAX_UNIX_SOCKET_PATH_BYTES, assertSocketPathFits } from './socket.js';
