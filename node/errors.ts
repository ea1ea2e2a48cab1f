/**
 * Typed errors. Code and tests match on `name`, never on the message; the CLI maps each name to an
 * exit code. Every message says what was wrong, where, and what to do about it.
 */

export class InvalidConfigError extends Error {
  override readonly name = 'InvalidConfigError'
}

export class InvalidArgumentError extends Error {
  override readonly name = 'InvalidArgumentError'
}

export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError'
}

/**
 * Training produced a non-finite loss. From the user's own settings (pre-training, Local-LiGO) it means
 * the learning rate is too high; from a Global-LiGO that peers aggregated it may mean a poisoned
 * aggregate, which the round engine rolls back instead of exiting.
 */
export class TrainingDivergedError extends Error {
  override readonly name = 'TrainingDivergedError'
}

export class DataError extends Error {
  override readonly name = 'DataError'
}

export class ModelFileError extends Error {
  override readonly name = 'ModelFileError'
}

/** Builds the message for a config field that broke a rule: the field, the value, the rule. */
export function invalidField (field: string, value: unknown, rule: string): InvalidConfigError {
  return new InvalidConfigError(`${field} = ${JSON.stringify(value)}: ${rule}`)
}

export class NetworkError extends Error {
  override readonly name = 'NetworkError'
}

/** A compute worker (node/compute/) died or failed to start: out of memory, a crash, a backend that would not load. */
export class ComputeWorkerError extends Error {
  override readonly name = 'ComputeWorkerError'
}
