// The ES module entry point: the CommonJS module (index.js) under named exports, so that
// `import { Client } from 'ciphervec'` and `require('ciphervec')` give the same classes.
import cv from './index.js'

export const {
  Client,
  Index,
  generateKey,
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
  __napiBindingTarget,
} = cv
export default cv
