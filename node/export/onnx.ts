/**
 * The transformer of node/model/vit.ts as an ONNX graph (IR 8, opset 17: standard operators only, so ONNX
 * Runtime and other tools run it). Input: an image model's `images` [batch, imageSize*imageSize*channels]
 * float32 in [0, 1], row-major, channels last; a text model's `input_ids` [batch, seqLen] int64, the
 * tokenizer's ids (node/model/tokenizer.ts; export's config.json states its rule). Output `logits`
 * [batch, classes]. Weights are initializers with the same names as in .fgm files. The graph follows
 * forward() op for op: same patch order (or a Gather of token rows), LayerNorm epsilon, GELU in its
 * sigmoid form x * sigmoid(1.702 x), attention scale 1/sqrt(head dim).
 */
import { ProtoWriter } from './protobuf.js'
import { inputWidth, isTextConfig, numTokens, patchDim } from '../model/config.js'
import { blockParam, paramShapes } from '../model/vit.js'
import type { ModelConfig, VitConfig } from '../model/config.js'
import type { TensorMap } from '../../protocol/safetensors.js'

const IR_VERSION = 8
const OPSET = 17
const LAYER_NORM_EPSILON = 1e-6
const GELU_SIGMOID_SCALE = 1.702

/** ONNX TensorProto.DataType values used here. */
const FLOAT = 1
const INT64 = 7
/** ONNX AttributeProto.AttributeType values used here. */
const ATTR_FLOAT = 1
const ATTR_INT = 2
const ATTR_INTS = 7

type Attribute = { name: string, float: number } | { name: string, int: number } | { name: string, ints: number[] }

function tensorProto (name: string, dims: number[], dataType: number, raw: Uint8Array): ProtoWriter {
  const t = new ProtoWriter()
  for (const d of dims) t.int(1, d)
  return t.int(2, dataType).string(8, name).bytes(9, raw)
}

function floatRaw (values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.length * 4)
  const view = new DataView(raw.buffer)
  values.forEach((v, i) => { view.setFloat32(i * 4, v, true) })
  return raw
}

function int64Raw (values: number[]): Uint8Array {
  const raw = new Uint8Array(values.length * 8)
  const view = new DataView(raw.buffer)
  values.forEach((v, i) => { view.setBigInt64(i * 8, BigInt(v), true) })
  return raw
}

function attributeProto (a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, a.name)
  if ('float' in a) return w.float(2, a.float).int(20, ATTR_FLOAT)
  if ('int' in a) return w.int(3, a.int).int(20, ATTR_INT)
  for (const i of a.ints) w.int(8, i)
  return w.int(20, ATTR_INTS)
}

/** A tensor input or output (`elemType` FLOAT or INT64) with a symbolic batch dimension. */
function valueInfo (name: string, elemType: number, dims: Array<number | string>): ProtoWriter {
  const shape = new ProtoWriter()
  for (const d of dims) shape.message(1, typeof d === 'number' ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d))
  const tensorType = new ProtoWriter().int(1, elemType).message(2, shape)
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType))
}

/** Builds the graph node by node; each helper returns the name of the value it produced. */
class GraphBuilder {
  readonly nodes: ProtoWriter[] = []
  readonly initializers: ProtoWriter[] = []
  private count = 0

  op (opType: string, inputs: string[], attributes: Attribute[] = []): string {
    const output = `${opType.toLowerCase()}_${this.count++}`
    const node = new ProtoWriter()
    for (const i of inputs) node.string(1, i)
    node.string(2, output).string(3, output).string(4, opType)
    for (const a of attributes) node.message(5, attributeProto(a))
    this.nodes.push(node)
    return output
  }

  weight (name: string, dims: number[], values: Float32Array): string {
    this.initializers.push(tensorProto(name, dims, FLOAT, floatRaw(values)))
    return name
  }

  scalar (value: number): string {
    return this.weight(`const_${this.count++}`, [], Float32Array.of(value))
  }

  ints (values: number[]): string {
    const name = `const_${this.count++}`
    this.initializers.push(tensorProto(name, [values.length], INT64, int64Raw(values)))
    return name
  }
}

/** The graph's input name for a config, and the ONNX type of its values. */
function onnxInput (c: ModelConfig): { name: string, elemType: number } {
  return isTextConfig(c) ? { name: 'input_ids', elemType: INT64 } : { name: 'images', elemType: FLOAT }
}

/** Patches, exactly as toPatches(): [batch*grid, patchRow, gridCols, patchCol*channels] -> swap the middle axes; then the patch embedding. */
function patchStem (g: GraphBuilder, c: VitConfig, dense: (x: string, prefix: string) => string): string {
  const grid = c.imageSize / c.patchSize
  const rows = g.op('Reshape', ['images', g.ints([-1, c.patchSize, grid, c.patchSize * c.channels])])
  const patches = g.op('Reshape', [g.op('Transpose', [rows], [{ name: 'perm', ints: [0, 2, 1, 3] }]), g.ints([-1, patchDim(c)])]) // [batch*patches, P]
  return g.op('Reshape', [dense(patches, 'patch'), g.ints([-1, numTokens(c) - 1, c.dim])]) // [batch, patches, D]
}

/** Encodes the model as ONNX bytes. `params` must hold exactly the config's parameters. */
export function modelToOnnx (c: ModelConfig, params: TensorMap, metadata: Record<string, string> = {}): Uint8Array {
  const g = new GraphBuilder()
  for (const [name, shape] of Object.entries(paramShapes(c))) {
    const p = params[name]
    if (p === undefined || p.shape.join() !== shape.join()) throw new Error(`parameter ${name} must have shape [${shape}]`)
    g.weight(name, shape, p.data)
  }
  const D = c.dim
  const H = c.heads
  const hd = D / H
  const dense = (x: string, prefix: string): string => g.op('Add', [g.op('MatMul', [x, `${prefix}.w`]), `${prefix}.b`])
  const layerNorm = (x: string, prefix: string): string => g.op('LayerNormalization', [x, `${prefix}.g`, `${prefix}.b`], [{ name: 'axis', int: 2 }, { name: 'epsilon', float: LAYER_NORM_EPSILON }])

  // Text: one row of the token table per id, as embeddingLookup() does.
  const embedded = isTextConfig(c)
    ? g.op('Gather', ['embed.w', 'input_ids'], [{ name: 'axis', int: 0 }]) // [batch, seqLen, D]
    : patchStem(g, c, dense) // [batch, patches, D]
  // The cls token, broadcast to [batch, 1, D] with the batch size read from the input.
  const batch = g.op('Gather', [g.op('Shape', [embedded]), g.ints([0])], [{ name: 'axis', int: 0 }]) // [1]
  const clsShape = g.op('Concat', [batch, g.ints([1, D])], [{ name: 'axis', int: 0 }])
  const cls = g.op('Expand', [g.op('Reshape', ['cls', g.ints([1, 1, D])]), clsShape]) // [batch, 1, D]
  let x = g.op('Add', [g.op('Concat', [cls, embedded], [{ name: 'axis', int: 1 }]), 'pos']) // [batch, T, D]

  const headsShape = g.ints([0, 0, H, hd])
  const scale = g.scalar(1 / Math.sqrt(hd))
  const geluScale = g.scalar(GELU_SIGMOID_SCALE)
  for (let l = 0; l < c.layers; l++) {
    const p = (name: string): string => blockParam(l, name)
    const h = layerNorm(x, p('ln1'))
    const split = (name: string, perm: number[]): string => g.op('Transpose', [g.op('Reshape', [dense(h, p(name)), headsShape])], [{ name: 'perm', ints: perm }])
    const q = split('q', [0, 2, 1, 3]) // [batch, H, T, hd]
    const kT = split('k', [0, 2, 3, 1]) // [batch, H, hd, T]
    const v = split('v', [0, 2, 1, 3]) // [batch, H, T, hd]
    const weights = g.op('Softmax', [g.op('Mul', [g.op('MatMul', [q, kT]), scale])], [{ name: 'axis', int: 3 }]) // [batch, H, T, T]
    const mixed = g.op('Transpose', [g.op('MatMul', [weights, v])], [{ name: 'perm', ints: [0, 2, 1, 3] }]) // [batch, T, H, hd]
    x = g.op('Add', [x, dense(g.op('Reshape', [mixed, g.ints([0, 0, D])]), p('o'))])
    const fc1 = dense(layerNorm(x, p('ln2')), p('fc1')) // [batch, T, F]
    const gelu = g.op('Mul', [fc1, g.op('Sigmoid', [g.op('Mul', [fc1, geluScale])])])
    x = g.op('Add', [x, dense(gelu, p('fc2'))])
  }
  const clsOut = g.op('Gather', [layerNorm(x, 'lnf'), g.ints([0])], [{ name: 'axis', int: 1 }]) // [batch, 1, D]
  const logits = dense(g.op('Reshape', [clsOut, g.ints([-1, D])]), 'head')
  g.nodes.push(new ProtoWriter().string(1, logits).string(2, 'logits').string(3, 'logits').string(4, 'Identity'))

  const graph = new ProtoWriter()
  for (const n of g.nodes) graph.message(1, n)
  graph.string(2, `fedgrow-${isTextConfig(c) ? 'text' : 'vit'}-${D}x${c.layers}`)
  for (const t of g.initializers) graph.message(5, t)
  const input = onnxInput(c)
  graph.message(11, valueInfo(input.name, input.elemType, ['batch', inputWidth(c)]))
  graph.message(12, valueInfo('logits', FLOAT, ['batch', c.numClasses]))

  const model = new ProtoWriter().int(1, IR_VERSION).string(2, 'fedgrow').string(3, '1')
  model.message(7, graph)
  model.message(8, new ProtoWriter().string(1, '').int(2, OPSET))
  for (const [key, value] of Object.entries({ ...metadata, config: JSON.stringify(c) })) {
    model.message(14, new ProtoWriter().string(1, key).string(2, value))
  }
  return model.finish()
}
