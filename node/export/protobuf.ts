/**
 * Just enough of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/) to write
 * ONNX models: varints, length-delimited fields and fixed32 floats. A message is built by appending
 * fields in order; nested messages are encoded first and added as bytes.
 */
const encoder = new TextEncoder()

export class ProtoWriter {
  private readonly chunks: Uint8Array[] = []

  private varint (value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`protobuf varint out of range: ${value}`)
    const bytes: number[] = []
    let v = value
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80)
      v = Math.floor(v / 0x80)
    }
    bytes.push(v)
    this.chunks.push(Uint8Array.from(bytes))
  }

  private tag (field: number, wireType: 0 | 2 | 5): void {
    this.varint(field * 8 + wireType)
  }

  /** int32, int64 and enum fields (non-negative values only: all ONNX needs here). */
  int (field: number, value: number): this {
    this.tag(field, 0)
    this.varint(value)
    return this
  }

  float (field: number, value: number): this {
    this.tag(field, 5)
    const bytes = new Uint8Array(4)
    new DataView(bytes.buffer).setFloat32(0, value, true)
    this.chunks.push(bytes)
    return this
  }

  bytes (field: number, value: Uint8Array): this {
    this.tag(field, 2)
    this.varint(value.length)
    this.chunks.push(value)
    return this
  }

  string (field: number, value: string): this {
    return this.bytes(field, encoder.encode(value))
  }

  message (field: number, message: ProtoWriter): this {
    return this.bytes(field, message.finish())
  }

  finish (): Uint8Array {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0))
    let at = 0
    for (const c of this.chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
}
