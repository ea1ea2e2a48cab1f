/** Why a message, payload or manifest was rejected. Counted by reason in logs and metrics. */
export type RejectionReason =
  | 'too-large'
  | 'bad-envelope'
  | 'unknown-version'
  | 'unknown-type'
  | 'malformed'
  | 'wrong-federation'
  | 'stale-round'
  | 'implausible-round'
  | 'beyond-schedule'
  | 'wrong-shape'
  | 'not-finite'
  | 'out-of-bounds'
  | 'hash-mismatch'
  | 'replay'
  | 'duplicate'
  | 'not-member'
  | 'rate-limited'
  | 'over-capacity'

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError'
  constructor (readonly reason: RejectionReason, message: string) {
    super(`${reason}: ${message}`)
  }
}

export class InvalidManifestError extends Error {
  override readonly name = 'InvalidManifestError'
}
