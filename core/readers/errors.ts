// Errors a user sees when a file cannot be read: they always name the file and what is wrong with it,
// so the CLI and the app can show `message` as is, without a stack trace.

export class DataError extends Error {
  readonly file: string;
  readonly problem: string;

  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, options);
    this.name = 'DataError';
    this.file = file;
    this.problem = problem;
  }
}

/** Runs `read`, turning any error that is not already a DataError into one about `file`. */
export async function readingFile<T>(file: string, what: string, read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof DataError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new DataError(file, `${what}: ${reason}`, { cause: error });
  }
}
