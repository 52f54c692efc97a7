/**
 * The ValidationError a synchronous check throws, for asserting its message; fails the test when
 * it throws nothing or something else. `what` names the input in that failure ("the volume").
 */
import { expect } from 'vitest';
import { ValidationError } from '../../src/protocol/errors.js';

export function refusal(fn: () => unknown, what = 'the input'): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error(`expected a refusal, but ${what} was accepted`);
}
