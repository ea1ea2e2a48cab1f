import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '../node/tf.js'
import { validateVitConfig } from '../node/model/config.js'
import { initParams } from '../node/model/vit.js'
import { loadModel, saveModel } from '../node/model/model-file.js'
import { decodeSafetensors, encodeSafetensors } from '../protocol/safetensors.js'
import { useBackend } from './helpers.js'

const config = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 3, dim: 8, layers: 1, heads: 2, mlpRatio: 1 })

describe('model files', () => {
  let dir: string
  let file: string
  before(async () => {
    await useBackend('wasm')
    dir = mkdtempSync(join(tmpdir(), 'fedgrow-model-'))
    file = join(dir, 'm.fgm')
    const params = initParams(config, 5)
    saveModel(file, config, params, { note: 'test' })
    tf.dispose(Object.values(params))
  })

  it('round-trips config, info and every parameter bit-exactly', () => {
    const original = initParams(config, 5)
    const { config: loaded, params, info } = loadModel(file)
    assert.deepEqual(loaded, config)
    assert.deepEqual(info, { note: 'test' })
    for (const [name, t] of Object.entries(original)) {
      assert.deepEqual(Buffer.from(params[name].dataSync().buffer), Buffer.from(t.dataSync().buffer), name)
    }
    tf.dispose([...Object.values(original), ...Object.values(params)])
  })

  it('is a safetensors file: 8-byte header length, JSON header, F32 data', () => {
    const bytes = readFileSync(file)
    const headerLength = Number(bytes.readBigUInt64LE(0))
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'))
    assert.equal(header['patch.w'].dtype, 'F32')
    assert.deepEqual(header['patch.w'].shape, [16, 8])
    assert.equal(header.__metadata__.format, 'fedgrow-model')
    assert.equal((8 + headerLength) % 8, 0)
  })

  const corrupt = (name: string, mutate: (b: Buffer) => Buffer, message: RegExp): void => {
    it(`rejects a ${name} file with a clear ModelFileError`, () => {
      const bad = join(dir, `${name}.fgm`)
      writeFileSync(bad, mutate(Buffer.from(readFileSync(file))))
      const before = tf.memory().numTensors
      assert.throws(() => loadModel(bad), { name: 'ModelFileError', message })
      assert.equal(tf.memory().numTensors, before, 'a failed load must create no tensors')
    })
  }
  corrupt('truncated', b => b.subarray(0, b.length - 10), /truncated/)
  corrupt('flipped-byte', b => { b[b.length - 3] ^= 0xff; return b }, /checksum/)
  corrupt('tiny', b => b.subarray(0, 4), /too short/)
  corrupt('garbage-header', b => { b.write('{{{{', 8); return b }, /not valid UTF-8 JSON/)

  it('rejects a file whose tensors do not fit its config', () => {
    const bytes = encodeSafetensors({ 'patch.w': { shape: [2, 2], data: new Float32Array(4) } }, { format: 'fedgrow-model', version: '1', config: JSON.stringify(config), info: '{}' })
    const bad = join(dir, 'mismatch.fgm')
    writeFileSync(bad, bytes)
    assert.throws(() => loadModel(bad), { name: 'ModelFileError', message: /patch.w has shape \[2,2\], its config needs \[16,8\]/ })
  })

  it('rejects a missing file, another format and a newer version', () => {
    assert.throws(() => loadModel(join(dir, 'nope.fgm')), { name: 'ModelFileError', message: /ENOENT/ })
    const other = join(dir, 'other.fgm')
    writeFileSync(other, encodeSafetensors({}, { format: 'something-else' }))
    assert.throws(() => loadModel(other), { name: 'ModelFileError', message: /expected "fedgrow-model"/ })
    writeFileSync(other, encodeSafetensors({}, { format: 'fedgrow-model', version: '9' }))
    assert.throws(() => loadModel(other), { name: 'ModelFileError', message: /version 9/ })
  })

  it('decodes only what the header bounds allow', () => {
    const huge = Buffer.alloc(16)
    huge.writeBigUInt64LE(2n ** 62n, 0)
    assert.throws(() => decodeSafetensors(huge), { name: 'TensorFileError', message: /exceeds/ })
  })
})
