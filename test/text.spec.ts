/**
 * Text models (issue 15): the hashed-word tokenizer's exact ids, the embedding gradient on wasm against
 * cpu autodiff, the text loaders' errors, text configs in model files, and a tiny pretrain -> eval ->
 * predict through the real CLI. Tiny models and data throughout: the 97% spam run is by hand (docs/text.md).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '../node/tf.js'
import { tokenize, validateTokenizer, words } from '../node/model/tokenizer.js'
import { embeddingLookup } from '../node/model/embedding.js'
import { validateTextConfig, validateVitConfig } from '../node/model/config.js'
import { checkParams, crossEntropy, forward, initParams, paramShapes } from '../node/model/vit.js'
import { loadModel, saveModel } from '../node/model/model-file.js'
import { writeTensorFile } from '../node/storage/files.js'
import { emailText } from '../node/data/email.js'
import { loadTextFile, parseCsv } from '../node/data/text.js'
import { batchTensors, splitTrainTest } from '../node/data/index.js'
import { expectNoLeakedTensors, maxAbsDiff, runCli, useBackend } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'fedgrow-text-'))
const file = (name: string, content: string): string => { const path = join(dir, name); writeFileSync(path, content); return path }

describe('text tokenizer', () => {
  it('gives the documented ids (values from an independent Python implementation of docs/text.md)', () => {
    const t = validateTokenizer({ vocabSize: 1000, seqLen: 10, seed: 0 })
    // Punctuation separates words, case folds, NFC joins the decomposed e + U+0301 into one word.
    const text = 'Hello, World! Ça va? 日本語 cafe\u0301 x2'
    assert.deepEqual(words(text), ['hello', 'world', 'ça', 'va', '日本語', 'café', 'x2'])
    assert.deepEqual([...tokenize(t, text)], [67, 907, 762, 880, 53, 45, 3, 0, 0, 0])
    // The seed moves words to other buckets; the same word always gets the same id.
    assert.deepEqual([...tokenize(validateTokenizer({ vocabSize: 8192, seqLen: 4, seed: 7 }), 'Hello hello HELLO')], [1524, 1524, 1524, 0])
    // Cut at seqLen; the largest seed; final sigma as Unicode's default lowercasing has it.
    assert.deepEqual([...tokenize(validateTokenizer({ vocabSize: 50, seqLen: 3, seed: 2 ** 32 - 1 }), 'Straße ΣΊΣΥΦΟΣ')], [38, 11, 0])
  })

  it('truncates at seqLen, pads with 0, keeps ids in [2, vocabSize), and reads empty text as all padding', () => {
    const t = validateTokenizer({ vocabSize: 5, seqLen: 4, seed: 0 })
    const long = tokenize(t, Array.from({ length: 50 }, (_, i) => `w${i}`).join(' '))
    assert.equal(long.length, 4)
    assert.ok(long.every(id => id >= 2 && id < 5))
    assert.deepEqual([...tokenize(t, '')], [0, 0, 0, 0])
    assert.deepEqual([...tokenize(t, ' ,.!? — 🙂 ')], [0, 0, 0, 0], 'no letters or digits, no words')
    const row = new Int32Array(8).fill(-1)
    tokenize(t, 'one', row, 4)
    assert.deepEqual([...row.slice(0, 4)], [-1, -1, -1, -1], 'writes only its own row')
    assert.deepEqual([...row.slice(5)], [0, 0, 0])
    assert.throws(() => validateTokenizer({ vocabSize: 2 }), { name: 'InvalidConfigError', message: /tokenizer.vocabSize/ })
    assert.throws(() => validateTokenizer({ kind: 'bpe' as 'hashed-words' }), { name: 'InvalidConfigError', message: /tokenizer.kind/ })
  })

  it('reads an e-mail as its Subject and body, other headers dropped, folded Subject joined', () => {
    const raw = 'From someone  Thu Aug 22 2002\r\nReceived: by mail.example\r\nSubject: Cheap\r\n  offer\r\nTo: x@y\r\n\r\nBuy now.\r\n'
    assert.equal(emailText(raw), 'Cheap  offer\n\nBuy now.\n')
    assert.equal(emailText('no headers here\n\nbody'), 'no headers here\n\nbody')
  })
})

describe('text transformer', () => {
  const config = validateTextConfig({ tokenizer: { kind: 'hashed-words', vocabSize: 16, seqLen: 5, seed: 0 }, numClasses: 2, classNames: ['ham', 'spam'], dim: 8, layers: 1, heads: 2, mlpRatio: 1 })
  before(async () => { await useBackend('wasm') })

  it('shares every parameter name with the ViT, embed.w [vocab, dim] in place of the patch stem', () => {
    const text = paramShapes(config)
    const image = paramShapes(validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 2, dim: 8, layers: 1, heads: 2, mlpRatio: 1 }))
    assert.deepEqual(text['embed.w'], [16, 8])
    assert.deepEqual(text.pos, [6, 8], 'seqLen tokens and the cls token')
    assert.deepEqual(Object.keys(text).filter(n => n !== 'embed.w'), Object.keys(image).filter(n => !n.startsWith('patch.')))
    assert.throws(() => validateTextConfig({ ...config, classNames: ['ham'] }), { name: 'InvalidConfigError', message: /classNames/ })
    // Image configs are written exactly as before text existed, so image .fgm files stay byte-for-byte the same.
    assert.equal(JSON.stringify(validateVitConfig({})), '{"imageSize":28,"channels":1,"patchSize":7,"numClasses":10,"dim":32,"layers":2,"heads":4,"mlpRatio":2}')
  })

  it('embedding lookup: the scatter gradient on wasm equals cpu autodiff of plain gather, repeated ids summed', async () => {
    const table = Array.from({ length: 6 * 3 }, (_, i) => Math.sin(i))
    const ids = [4, 1, 4, 0, 4, 1]
    const weights = Array.from({ length: 6 * 3 }, (_, i) => (i % 5) - 2)
    const lossOf = (lookup: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(lookup(t), tf.tensor2d(weights, [6, 3])))
    await useBackend('cpu')
    const expected = tf.tidy(() => {
      const [t, idsT] = [tf.tensor2d(table, [6, 3]), tf.tensor1d(ids, 'int32')]
      const reference = tf.grad(lossOf(x => tf.gather(x, idsT)))(t)
      assert.ok(maxAbsDiff(tf.grad(lossOf(x => embeddingLookup(x, idsT)))(t), reference) < 1e-6, 'cpu: scatter gradient differs from autodiff')
      return { grad: reference.arraySync() as number[][], value: tf.gather(t, idsT).arraySync() as number[][] }
    })
    await useBackend('wasm')
    const [t, idsT] = [tf.tensor2d(table, [6, 3]), tf.tensor1d(ids, 'int32')]
    tf.tidy(() => {
      const grad = tf.grad(lossOf(x => embeddingLookup(x, idsT)))(t)
      assert.ok(maxAbsDiff(grad, tf.tensor2d(expected.grad)) < 1e-6, 'wasm: gradient differs from cpu autodiff')
      assert.ok(maxAbsDiff(embeddingLookup(t, idsT), tf.tensor2d(expected.value)) < 1e-6)
      assert.deepEqual((grad.arraySync() as number[][])[2], [0, 0, 0], 'rows nobody read get no gradient')
    })
    expectNoLeakedTensors(() => tf.tidy(() => { tf.grad(lossOf(x => embeddingLookup(x, idsT)))(t) }), 'embedding gradient')
    tf.dispose([t, idsT])
  })

  it('maps int32 ids [batch, seqLen] to logits [batch, classes], trains every parameter on wasm, leaks nothing', () => {
    const params = initParams(config, 1)
    checkParams(config, params)
    const ids = tf.tensor2d([[2, 3, 4, 0, 0], [5, 5, 15, 1, 0], [0, 0, 0, 0, 0]], [3, 5], 'int32')
    const labels = tf.tensor1d([0, 1, 1], 'int32')
    const names = Object.keys(params)
    const grads = tf.tidy(() => tf.grads((...ps: tf.Tensor[]) => crossEntropy(forward(config, Object.fromEntries(names.map((n, i) => [n, ps[i]])), ids), labels))(names.map(n => params[n])).map(g => tf.keep(g)))
    const embedGrad = grads[names.indexOf('embed.w')].arraySync() as number[][]
    assert.ok(embedGrad[5].some(v => v !== 0) && embedGrad[7].every(v => v === 0), 'read rows get gradient, unread rows none')
    assert.ok(grads.every(g => Number.isFinite(tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]))))
    expectNoLeakedTensors(() => tf.tidy(() => { forward(config, params, ids) }), 'text forward')
    assert.throws(() => forward(config, params, tf.zeros([1, 5]) as tf.Tensor2D), { name: 'InvalidConfigError', message: /int32 token ids/ })
    assert.throws(() => forward(config, params, tf.zeros([1, 4], 'int32') as tf.Tensor2D), { name: 'InvalidConfigError', message: /5 token ids/ })
    tf.dispose([ids, labels, ...grads, ...Object.values(params)])
  })

  it('saves the text config with its tokenizer and loads it back; a bad tokenizer in a file is refused', () => {
    const params = initParams(config, 2)
    const path = join(dir, 'text.fgm')
    saveModel(path, config, params)
    const loaded = loadModel(path)
    assert.deepEqual(loaded.config, config)
    assert.ok(maxAbsDiff(loaded.params['embed.w'], params['embed.w']) === 0)
    const bad = join(dir, 'bad-tokenizer.fgm')
    writeTensorFile(bad, params, { format: 'fedgrow-model', version: '1', config: JSON.stringify({ ...config, tokenizer: { ...config.tokenizer, seqLen: 0 } }), info: '{}' })
    assert.throws(() => loadModel(bad), { name: 'ModelFileError', message: /bad config: tokenizer.seqLen/ })
    tf.dispose([...Object.values(params), ...Object.values(loaded.params)])
  })
})

describe('text data', () => {
  it('reads JSON lines and CSV into tokenized rows, names sorted into classes, and batches int32 ids', () => {
    const t = validateTokenizer({ vocabSize: 64, seqLen: 6 })
    const jsonl = loadTextFile(file('a.jsonl', '{"text": "buy now", "label": "spam"}\n\n{"text": "see you at lunch", "label": "ham"}\n'), t)
    assert.deepEqual(jsonl.classNames, ['ham', 'spam'])
    assert.deepEqual([...jsonl.labels], [1, 0])
    const csv = loadTextFile(file('a.csv', 'id,text,label\r\n1,"buy, ""now""",1\r\n2,"line one\nline two",0\r\n'), t)
    assert.deepEqual(csv.classNames, ['0', '1'], 'digit labels are class numbers')
    assert.deepEqual([...csv.labels], [1, 0])
    assert.deepEqual([...csv.tokens.subarray(0, 6)], [...tokenize(t, 'buy, "now"')])
    const { inputs, labels } = batchTensors(splitTrainTest(csv, 0.5, 0).train, [0])
    assert.equal(inputs.dtype, 'int32')
    assert.deepEqual(inputs.shape, [1, 6])
    tf.dispose([inputs, labels])
  })

  it('names the file, the line and the fix for every bad row', () => {
    const t = validateTokenizer({})
    const bad = (name: string, content: string, message: RegExp): void => {
      assert.throws(() => loadTextFile(file(name, content), t), { name: 'DataError', message }, name)
    }
    bad('bad-json.jsonl', '{"text": "a", "label": "x"}\n{"text": "b", "label": }\n', /bad-json\.jsonl:2: not valid JSON.*one JSON object/)
    bad('no-label.jsonl', '{"text": "a", "label": "x"}\n\n{"text": "b"}\n', /no-label\.jsonl:3: has no "label"/)
    bad('no-text.jsonl', '{"label": "x"}\n', /no-text\.jsonl:1: has no "text"/)
    bad('negative.jsonl', '{"text": "a", "label": -1}\n', /negative\.jsonl:1: label -1 is not a whole number/)
    bad('mixed.jsonl', '{"text": "a", "label": "x"}\n{"text": "b", "label": 1}\n', /mixed\.jsonl:2: label 1 is a number.*not both/)
    bad('one-class.jsonl', '{"text": "a", "label": "x"}\n', /at least 2 classes/)
    bad('unclosed.csv', 'text,label\n"fine",a\n"never closed,b\nmore\n', /unclosed\.csv:3: a quoted field is never closed/)
    bad('stray.csv', 'text,label\nsay "hi",a\n', /stray\.csv:2: a quote inside an unquoted field/)
    bad('after.csv', 'text,label\n"a\nb"x,a\n', /after\.csv:3: text follows a closing quote/)
    bad('fields.csv', 'text,label\n"multi\nline",a\none,two,three\n', /fields\.csv:4: 3 fields where the header has 2/)
    bad('header.csv', 'message,class\nhi,a\n', /header\.csv:1: .*no "text" column/)
    bad('empty-label.csv', 'text,label\nhi,a\nho, \n', /empty-label\.csv:3: the label is empty/)
    bad('notes.txt', 'hello', /name the file \.jsonl .* or \.csv/)
    assert.deepEqual(parseCsv('a,b\n\n"",x\n', 'p').map(r => r.fields), [['a', 'b'], ['', 'x']], 'blank lines skipped, a quoted empty field kept')
  })
})

describe('text pretrain, eval and predict (CLI)', function () {
  it('trains a tiny text model on a labelled file, scores it again with eval, and classifies a text file', async () => {
    // Two classes told apart by their words; 120 rows so that the 20% test split holds 24.
    const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify(i % 2 === 0
      ? { text: `win money now offer ${i % 7} prize`, label: 'spam' }
      : { text: `meeting notes for the project ${i % 5} tomorrow`, label: 'ham' }))
    const data = file('tiny.jsonl', lines.join('\n') + '\n')
    const model = join(dir, 'tiny.fgm')
    const shape = ['--dim', '8', '--layers', '1', '--heads', '2', '--vocab-size', '64', '--seq-len', '8']
    const trained = await runCli(['pretrain', '--data', `text:${data}`, ...shape, '--steps', '40', '--batch-size', '16', '--lr', '0.01', '--out', model, '--format', 'json'])
    assert.equal(trained.code, 0, trained.stderr)
    const t = JSON.parse(trained.stdout)
    assert.deepEqual(t.config.tokenizer, { kind: 'hashed-words', vocabSize: 64, seqLen: 8, seed: 0 })
    assert.deepEqual(t.config.classNames, ['ham', 'spam'])
    assert.equal(t.accuracy, 1, `tiny text accuracy ${t.accuracy}`)
    const evaluated = await runCli(['eval', '--model', model, '--data', `text:${data}`, '--format', 'json'])
    assert.equal(evaluated.code, 0, evaluated.stderr)
    assert.equal(JSON.parse(evaluated.stdout).accuracy, t.accuracy)
    const wrongKind = await runCli(['pretrain', '--data', `text:${data}`, '--patch-size', '4', '--out', join(dir, 'x.fgm')])
    assert.equal(wrongKind.code, 2, wrongKind.stderr)
    assert.match(wrongKind.stderr, /--patch-size is for images/)
    const message = file('message.txt', 'a prize offer: win money now')
    const predicted = await runCli(['predict', '--model', model, message, '--format', 'json'])
    assert.equal(predicted.code, 0, predicted.stderr)
    const [p] = JSON.parse(predicted.stdout) as Array<{ input: string, top: Array<{ label: number, name: string, probability: number }> }>
    assert.equal(p.input, message)
    assert.equal(p.top.length, 2, 'top is capped at the model\'s classes')
    assert.equal(p.top[0].name, 'spam')
    assert.ok(p.top[0].probability > 0.5)
  })
})
