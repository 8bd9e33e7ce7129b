'use strict'
// The errors ciphervec throws and rejects with. The native addon gives each failure a `code`
// (src/errors.rs maps the engine's errors to codes, in one place); `toCiphervecError` makes it
// an instance of the class of that code. napi's own argument errors (a string where a number
// belongs...) are `InvalidArgumentError`, like the argument errors ciphervec raises itself.

/** Base class of every ciphervec error; `code` names the failure ('INTERNAL' for a bug). */
class CiphervecError extends Error {
  constructor(message, code = 'INTERNAL') {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

/** The key does not open this index. */
class WrongKeyError extends CiphervecError {
  constructor(message) {
    super(message, 'WRONG_KEY')
  }
}

/** No index of that name. */
class IndexNotFoundError extends CiphervecError {
  constructor(message) {
    super(message, 'INDEX_NOT_FOUND')
  }
}

/** An index of that name already exists. */
class IndexExistsError extends CiphervecError {
  constructor(message) {
    super(message, 'INDEX_EXISTS')
  }
}

/** Another writer (another process, or another database of this location) holds the index. */
class LockedError extends CiphervecError {
  constructor(message) {
    super(message, 'LOCKED')
  }
}

/** Stored bytes failed authentication or do not belong to this index. */
class CorruptedError extends CiphervecError {
  constructor(message) {
    super(message, 'CORRUPTED')
  }
}

/** The stored index is older than an anchor taken earlier. */
class RolledBackError extends CiphervecError {
  constructor(message) {
    super(message, 'ROLLED_BACK')
  }
}

/** Storage unreachable after bounded retries (object stores); nothing was changed. */
class UnavailableError extends CiphervecError {
  constructor(message) {
    super(message, 'UNAVAILABLE')
  }
}

/** Any other invalid argument: a value of the wrong type, a bad id, option or key length. */
class InvalidArgumentError extends CiphervecError {
  constructor(message) {
    super(message, 'INVALID_ARGUMENT')
  }
}

/** A malformed metadata filter. */
class InvalidFilterError extends CiphervecError {
  constructor(message) {
    super(message, 'INVALID_FILTER')
  }
}

/** A vector of the wrong dimension. */
class DimensionMismatchError extends CiphervecError {
  constructor(message) {
    super(message, 'DIMENSION_MISMATCH')
  }
}

/** An empty vector, a NaN or infinite value, a norm of 2**62 or more, or a zero vector under cosine. */
class InvalidVectorError extends CiphervecError {
  constructor(message) {
    super(message, 'INVALID_VECTOR')
  }
}

/** A write through a read-only handle. */
class ReadOnlyError extends CiphervecError {
  constructor(message) {
    super(message, 'READ_ONLY')
  }
}

/** The user's access to this index does not allow the call. */
class PermissionDeniedError extends CiphervecError {
  constructor(message) {
    super(message, 'PERMISSION_DENIED')
  }
}

/** The index was written in a format this version cannot read. */
class UnsupportedFormatError extends CiphervecError {
  constructor(message) {
    super(message, 'UNSUPPORTED_FORMAT')
  }
}

/** A local I/O error (the index stays as it was). */
class StorageError extends CiphervecError {
  constructor(message) {
    super(message, 'STORAGE')
  }
}

/** A key management service could not produce or unwrap a key. */
class KeyServiceError extends CiphervecError {
  constructor(message) {
    super(message, 'KEY_SERVICE')
  }
}

/** The per-key use cap was reached and no fresh key could be derived. */
class KeyExhaustedError extends CiphervecError {
  constructor(message) {
    super(message, 'KEY_EXHAUSTED')
  }
}

/** An earlier commit failed and could not be rolled back: reopen the index. */
class PoisonedError extends CiphervecError {
  constructor(message) {
    super(message, 'POISONED')
  }
}

const classes = {
  CiphervecError,
  WrongKeyError,
  IndexNotFoundError,
  IndexExistsError,
  LockedError,
  CorruptedError,
  RolledBackError,
  UnavailableError,
  InvalidArgumentError,
  InvalidFilterError,
  DimensionMismatchError,
  InvalidVectorError,
  ReadOnlyError,
  PermissionDeniedError,
  UnsupportedFormatError,
  StorageError,
  KeyServiceError,
  KeyExhaustedError,
  PoisonedError,
}

/** The class of each code. */
const byCode = new Map(
  Object.values(classes)
    .filter((C) => C !== CiphervecError)
    .map((C) => [new C('').code, C]),
)

/** napi's codes for a JavaScript value it could not convert to the type a call takes. */
const argumentStatuses = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
])

/**
 * napi's message for a value it could not convert quotes the value: a number, or an object
 * as JSON (a key's bytes passed as an array where a name belongs would be in the message).
 * Only the value's type is kept.
 */
const QUOTED_VALUE = /JavaScript value `(\w+)[\s\S]*` into rust type `([^`]*)`$/

function withoutValue(message) {
  return message.replace(QUOTED_VALUE, (_, type, rust) => `JavaScript ${type} value into rust type \`${rust}\``)
}

/**
 * The ciphervec error for an error the addon threw: its class by `code`. An exception of the
 * caller's own (thrown by a getter or `toJSON` while arguments were read) passes unchanged.
 */
function toCiphervecError(e) {
  if (e instanceof CiphervecError || !(e instanceof Error) || typeof e.code !== 'string') {
    return e
  }
  const Class = byCode.get(e.code)
  if (Class) return new Class(e.message)
  if (argumentStatuses.has(e.code)) return new InvalidArgumentError(withoutValue(e.message))
  if (e.code === 'INTERNAL' || e.code === 'GenericFailure') return new CiphervecError(e.message)
  return e
}

module.exports = { ...classes, toCiphervecError }
