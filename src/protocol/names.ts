/** Names chosen by operators that appear in paths, labels and logs: kept narrow on purpose. */
import * as z from 'zod';

/**
 * Worker ids are chosen by operators and appear in paths, labels and logs, so they are narrow:
 * letters, digits, dot, dash and underscore, 1–63 characters, starting with a letter or digit
 * (the DNS-label length, so a worker id can name a Kubernetes object).
 */
export const WorkerId = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'may contain only letters, digits, ".", "-" and "_", and must start with a letter or digit')
  .refine((s) => !s.includes('..'), 'must not contain ".."');

export const TeamName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'may contain only lowercase letters, digits and "-", starting with a letter or digit');
