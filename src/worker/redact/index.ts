/**
 * The worker's redactor (see redactor.ts). The execution runner builds one `Redactor` from the
 * worker's configured secrets, uses `streamRedactor()` per output stream of an execution and
 * `redactValue()` for every other event and result before anything reaches the outbox.
 */
export { Redactor, MIN_SECRET_LENGTH, type RedactorOptions, type RedactorSecret, type StreamRedactor } from './redactor.js';
export { encodedForms } from './forms.js';
