/**
 * Using a grown model outside fedgrow: ONNX export run by ONNX Runtime gives fedgrow's logits; the
 * safetensors export holds the same weights; `fedgrow predict` reads PNG and IDX digits.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { PNG } from 'pngjs'
import * as tf from '../node/tf.js'
import { loadData } from '../node/data/index.js'
import { encodeIdx } from '../node/data/idx.js'
import { loadModel } from '../node/model/model-file.js'
import { forward, initParams } from '../node/model/vit.js'
import { validateTextConfig } from '../node/model/config.js'
import { tokenize } from '../node/model/tokenizer.js'
import { exportModel } from '../node/export/index.js'
import { toTensorMap } from '../node/storage/files.js'
import { decodeSafetensors } from '../protocol/safetensors.js'
import { runCli, useBackend } from './helpers.js'
import type { LoadedModel } from '../node/model/model-file.js'

/** A 28x28 digit as a 56x56 PNG, dark on light (as drawn on paper): predict must resize and invert it. */
function digitPng (pixels: Float32Array): Buffer {
  const png = new PNG({ width: 56, height: 56 })
  for (let y = 0; y < 56; y++) {
    for (let x = 0; x < 56; x++) {
      const v = Math.round(255 * (1 - pixels[Math.floor(y / 2) * 28 + Math.floor(x / 2)]))
      png.data.set([v, v, v, 255], (y * 56 + x) * 4)
    }
  }
  return PNG.sync.write(png)
}

describe('export and predict', function () {
  this.timeout(180_000)
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-export-'))
  const grown = join(dir, 'grown.fgm')
  let model: LoadedModel

  before(async () => {
    await useBackend('wasm')
    const pre = await runCli(['pretrain', '--dim', '32', '--layers', '1', '--epochs', '1', '--out', join(dir, 'small.fgm')])
    assert.equal(pre.code, 0, pre.stderr)
    const grow = await runCli(['grow', '--from', join(dir, 'small.fgm'), '--to-dim', '48', '--to-layers', '2', '--steps', '60', '--out', grown])
    assert.equal(grow.code, 0, grow.stderr)
    model = loadModel(grown)
  })

  after(() => { tf.dispose(Object.values(model.params)) })

  it('exports a grown model to ONNX that ONNX Runtime runs to fedgrow\'s logits', async () => {
    const run = await runCli(['export', '--model', grown, '--to', join(dir, 'onnx'), '--format', 'onnx'])
    assert.equal(run.code, 0, run.stderr)
    const { test } = loadData('mnist', 0)
    const n = 16
    const images = test.images.slice(0, n * 784)
    const ours = Array.from(tf.tidy(() => forward(model.config, model.params, tf.tensor2d(images, [n, 784])).dataSync()))
    const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'))
    const out = await session.run({ images: new ort.Tensor('float32', images, [n, 784]) })
    assert.deepEqual(out.logits.dims, [n, 10])
    const theirs = out.logits.data as Float32Array
    const maxDiff = ours.reduce((m, v, i) => Math.max(m, Math.abs(v - theirs[i])), 0)
    assert.ok(maxDiff < 1e-4, `ONNX Runtime logits differ by up to ${maxDiff}`)
  })

  it('exports safetensors weights with a config that describes them', async () => {
    const run = await runCli(['export', '--model', grown, '--to', join(dir, 'st'), '--format', 'safetensors'])
    assert.equal(run.code, 0, run.stderr)
    const { tensors } = decodeSafetensors(readFileSync(join(dir, 'st', 'model.safetensors')), 'model.safetensors')
    const config = JSON.parse(readFileSync(join(dir, 'st', 'config.json'), 'utf8'))
    assert.deepEqual(config.config, model.config)
    assert.deepEqual(Object.keys(tensors), Object.keys(config.parameters))
    assert.deepEqual([...tensors['blocks.1.fc2.w'].data], [...model.params['blocks.1.fc2.w'].dataSync()])
  })

  it('classifies digits from PNG and IDX files', async () => {
    const { test } = loadData('mnist', 0)
    // Digits the model itself gets right with confidence: the test is about reading files, not accuracy.
    const probabilities = tf.tidy(() => tf.softmax(forward(model.config, model.params, tf.tensor2d(test.images.slice(0, 200 * 784), [200, 784]))).arraySync() as number[][])
    const picked = [...Array(200).keys()].filter(i => probabilities[i][test.labels[i]] > 0.5).slice(0, 3)
    assert.equal(picked.length, 3)
    const pixels = (i: number): Float32Array => test.images.slice(i * 784, (i + 1) * 784)
    const files = picked.map((i, k) => {
      const file = join(dir, `digit${k}.png`)
      writeFileSync(file, digitPng(pixels(i)))
      return file
    })
    const idx = join(dir, 'digits-idx3-ubyte')
    writeFileSync(idx, encodeIdx([3, 28, 28], Uint8Array.from(picked.flatMap(i => [...pixels(i)].map(v => Math.round(v * 255))))))
    const run = await runCli(['predict', '--model', grown, ...files, idx, '--format', 'json'])
    assert.equal(run.code, 0, run.stderr)
    const predictions = JSON.parse(run.stdout) as Array<{ input: string, top: Array<{ label: number, probability: number }> }>
    assert.deepEqual(predictions.map(p => p.input), ['digit0.png', 'digit1.png', 'digit2.png', 'digits-idx3-ubyte[0]', 'digits-idx3-ubyte[1]', 'digits-idx3-ubyte[2]'])
    const truth = picked.map(i => test.labels[i])
    assert.deepEqual(predictions.map(p => p.top[0].label), [...truth, ...truth])
    assert.equal(predictions[0].top.length, 3)
    const text = await runCli(['predict', '--model', grown, files[0]])
    assert.match(text.stdout, new RegExp(`^digit0.png: ${truth[0]} \\(\\d+\\.\\d\\d%\\), `))
  })

  it('explains unreadable inputs', async () => {
    writeFileSync(join(dir, 'bad.png'), 'not an image')
    const run = await runCli(['predict', '--model', grown, join(dir, 'bad.png')])
    assert.equal(run.code, 4)
    assert.match(run.stderr, /bad.png: not an IDX file/)
  })

  it('exports a text model whose ONNX graph, fed the tokenizer config.json describes, gives fedgrow\'s logits from raw text', async () => {
    const config = validateTextConfig({ tokenizer: { kind: 'hashed-words', vocabSize: 64, seqLen: 8, seed: 7 }, classNames: ['ham', 'spam'], numClasses: 2, dim: 16, layers: 2, heads: 2, mlpRatio: 1 })
    // Weights far from init's 0.02, so that the logits are large enough for the comparison to mean something.
    const params = tf.tidy(() => Object.fromEntries(Object.entries(initParams(config, 3)).map(([n, t]) => [n, /\.(g|b)$/.test(n) ? t : tf.mul(t, 20)])))
    const out = join(dir, 'text')
    exportModel(config, toTensorMap(params), out, 'onnx')
    exportModel(config, toTensorMap(params), out, 'safetensors')
    const described = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))
    assert.deepEqual({ ...described.tokenizer, rule: undefined }, { kind: 'hashed-words', vocabSize: 64, seqLen: 8, seed: 7, padId: 0, reservedId: 1, rule: undefined })
    assert.equal(described.tokenizer.rule.length, 4)
    assert.deepEqual(described.classNames, ['ham', 'spam'])
    const texts = ['Win a FREE prize now!!!', 'Meeting moved to 3pm, see you there', 'ok', 'Ça va? 日本語 cafe\u0301 x2 and then a much longer text than eight words']
    const ids = new Int32Array(texts.length * 8)
    texts.forEach((t, i) => tokenize(config.tokenizer, t, ids, i * 8))
    const ours = Array.from(tf.tidy(() => forward(config, params, tf.tensor2d(ids, [texts.length, 8], 'int32')).dataSync()))
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'))
    const result = await session.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [texts.length, 8]) })
    assert.deepEqual(result.logits.dims, [texts.length, 2])
    const theirs = result.logits.data as Float32Array
    const scale = Math.max(...ours.map(Math.abs))
    const maxDiff = ours.reduce((m, v, i) => Math.max(m, Math.abs(v - theirs[i])), 0)
    assert.ok(scale > 0.5, `logits too small (${scale}) for the comparison to mean something`)
    assert.ok(maxDiff < 1e-4 * Math.max(1, scale), `ONNX Runtime logits differ by up to ${maxDiff} (logits up to ${scale})`)
    tf.dispose(Object.values(params))
  })
})
