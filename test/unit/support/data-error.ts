// The DataError a call throws, for tests that check its message and fields; fails the test if it throws nothing
// or something else.

import { expect } from 'vitest';
import { DataError } from '../../../core/readers/errors.js';

export function dataError(run: () => unknown): DataError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }
  throw new Error('expected a DataError');
}
