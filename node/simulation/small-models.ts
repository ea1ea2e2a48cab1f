/**
 * The small models a simulation's peers bring, each pre-trained on a compute worker until its validation
 * accuracy stops rising, and cached in OUT/cache.
 *
 * Where they start (`SmallModelSource`):
 * - `checkpoint`: a public checkpoint of the peer's shape, trained on a slice of the data that no peer
 *   holds (as people start from published pre-trained models), grown as it is: peers of one shape grow
 *   the same model, and their private data enters through Global-LiGO (and phase 4) only.
 * - `public`: that checkpoint fine-tuned on the peer's rows until flat. Peers of one shape share a
 *   starting point, which keeps their models near one basis.
 * - `own`: random weights trained on the peer's rows alone.
 * Whatever the source, each peer's report is of the best model it could have alone without growth:
 * the checkpoint fine-tuned on its rows (`public`), or for `own` its own model.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { splitTrainTest, VALIDATION_FRACTION } from '../data/index.js'
import { readModelFile } from '../model/model-file.js'
import { stepsForEpochs } from '../train/trainer.js'
import { sha256Hex, canonicalJson } from '../../protocol/canonical.js'
import type { ComputePool } from '../compute/pool.js'
import type { ModelData, PretrainJob } from '../compute/messages.js'
import type { Dataset, TrainTest } from '../data/dataset.js'
import type { ModelConfig } from '../model/config.js'
import type { Logger } from '../log.js'
import type { ProgressSink } from '../train/progress.js'
import type { Preset } from './presets.js'

export const SMALL_MODEL_SOURCES = ['checkpoint', 'public', 'own'] as const
export type SmallModelSource = typeof SMALL_MODEL_SOURCES[number]

/**
 * Share of the data's training rows held out as the public slice (1,500 of the bundled 8,000 training
 * digits, as in the design study): no peer holds them, whatever the source.
 */
export const PUBLIC_FRACTION = 3 / 16
/** Epochs without a better validation score before a model counts as flat (small ViTs plateau for a few epochs early on). */
export const PRETRAIN_PATIENCE_EPOCHS = 10
/** Fine-tuning a public checkpoint runs at this fraction of the preset's rate, so that it stays near its start. */
const PUBLIC_FINETUNE_RATE = 0.25

/** What a peer could have alone, without growth: its small model trained on its own rows until flat. */
export interface SmallModelReport {
  peer: number
  dim: number
  layers: number
  /** What the peer grows from (the report is of the `public` model when this is `checkpoint`). */
  source: SmallModelSource
  /** Steps to its best validation score (on its own rows, after the public checkpoint's). */
  steps: number
  validationAccuracy: number
  /** On the peer's own test split. */
  testAccuracy: number
}

export interface SmallModelContext {
  pool: ComputePool
  preset: Preset
  source: SmallModelSource
  /** What identifies the run's data and shards in cache keys. */
  cacheKey: Record<string, unknown>
  cacheDir: string
  seed: number
  log: Logger
  onProgress?: ProgressSink
}

/**
 * The data's public slice (`fraction` of its training rows), and the rest (what the peers' shards are
 * dealt from). A larger slice stands for participants who start from a stronger published checkpoint.
 */
export function splitPublic<D extends Dataset> (data: TrainTest<D>, seed: number, fraction = PUBLIC_FRACTION): { publicRows: D, shared: TrainTest<D> } {
  const split = splitTrainTest(data.train, fraction, `public:${seed}`)
  return { publicRows: split.test, shared: { train: split.train, test: data.test } }
}

const shapeName = (config: ModelConfig): string => `${config.dim}x${config.layers}`

/** Runs a pre-training job until flat on `rows` (15% of them deciding when), unless its file is cached. */
async function trainCached (ctx: SmallModelContext, name: string, job: { config: ModelConfig, rows: TrainTest, start?: ModelData, learningRate: number, seed: string, info: Record<string, unknown> }): Promise<ModelData & { info: Record<string, unknown> }> {
  const key = sha256Hex(canonicalJson({ ...ctx.cacheKey, name, config: job.config, maxEpochs: ctx.preset.pretrainMaxEpochs, patience: PRETRAIN_PATIENCE_EPOCHS, lr: job.learningRate, start: job.start === undefined ? null : job.start.config })).slice(0, 16)
  const path = join(ctx.cacheDir, `${name}-${key}.fgm`)
  if (!existsSync(path)) {
    const split = splitTrainTest(job.rows.train, VALIDATION_FRACTION, `pretrain-validation:${job.seed}`)
    const epoch = stepsForEpochs(split.train.count, 1, ctx.preset.batchSize)
    const pretrain: PretrainJob = {
      config: job.config,
      ...(job.start !== undefined ? { start: job.start.params } : {}),
      data: { train: split.train, test: job.rows.test },
      options: { steps: epoch * ctx.preset.pretrainMaxEpochs, batchSize: ctx.preset.batchSize, learningRate: job.learningRate, weightDecay: 0.05, schedule: 'constant', seed: job.seed, phase: `pretrain ${name}` },
      stopping: { validation: split.test, everySteps: epoch, patience: PRETRAIN_PATIENCE_EPOCHS },
      path,
      info: job.info
    }
    const result = await ctx.pool.pretrain(pretrain, { onProgress: ctx.onProgress })
    ctx.log({ event: 'pretrained', model: name, dim: job.config.dim, layers: job.config.layers, steps: result.steps, validationAccuracy: result.validationAccuracy, accuracy: result.accuracy })
  }
  const { params, info } = readModelFile(path)
  return { config: job.config, params, info }
}

/** Every peer's small model, in peer order, with what pre-training reached. */
export async function prepareSmallModels (ctx: SmallModelContext, configs: ModelConfig[], shards: TrainTest[], publicRows: Dataset): Promise<{ models: ModelData[], reports: SmallModelReport[] }> {
  const checkpoints = new Map<string, Promise<ModelData>>()
  const checkpointOf = async (config: ModelConfig): Promise<ModelData> => {
    const shape = shapeName(config)
    if (!checkpoints.has(shape)) {
      // A checkpoint has no peer's test split: it is scored on its own validation rows (the same split trainCached makes).
      const seed = `public:${ctx.seed}:${shape}`
      const rows = { train: publicRows, test: splitTrainTest(publicRows, VALIDATION_FRACTION, `pretrain-validation:${seed}`).test }
      checkpoints.set(shape, trainCached(ctx, `public-${shape}`, { config, rows, learningRate: ctx.preset.learningRate, seed, info: { producedBy: 'fedgrow simulate: public checkpoint', scoredOn: 'its validation rows' } }))
    }
    return await checkpoints.get(shape)!
  }
  const trained = await Promise.all(configs.map(async (config, peer) => {
    const start = ctx.source === 'own' ? undefined : await checkpointOf(config)
    const model = await trainCached(ctx, `small-${peer}`, {
      config,
      rows: shards[peer],
      ...(start !== undefined ? { start } : {}),
      learningRate: ctx.preset.learningRate * (start !== undefined ? PUBLIC_FINETUNE_RATE : 1),
      seed: `${ctx.seed}:${peer}`,
      info: { producedBy: 'fedgrow simulate', peer, from: start === undefined ? 'random weights' : 'public checkpoint' }
    })
    const report: SmallModelReport = { peer, dim: config.dim, layers: config.layers, source: ctx.source, steps: Number(model.info.steps), validationAccuracy: Number(model.info.validationAccuracy), testAccuracy: Number(model.info.testAccuracy) }
    return { model: ctx.source === 'checkpoint' && start !== undefined ? start : { config: model.config, params: model.params }, report }
  }))
  return { models: trained.map(t => t.model), reports: trained.map(t => t.report) }
}
