/** A small valid federation manifest for tests: tiny images (toyDataset) and tiny shapes. */
import type { Manifest } from '../protocol/manifest.js'

export function tinyManifest (overrides: Partial<Manifest['schedule']> = {}): Manifest {
  return {
    version: 1,
    method: 'fedgrow',
    name: 'test-federation',
    task: { kind: 'image-classification', data: 'toy', partition: 'iid', imageSize: 8, channels: 1, numClasses: 4, patchSize: 4, heads: 2 },
    intermediate: { dim: 12, layers: 2, mlpRatio: 1 },
    target: { dim: 16, layers: 3, mlpRatio: 1 },
    ligo: { init: 'ligo', seed: 7 },
    schedule: { rounds: 2, localSteps: 3, localLigoSteps: 3, learningRate: 0.002, batchSize: 16, weightDecay: 0.05, roundTimeoutMs: 30_000, quorum: 1, ...overrides },
    aggregation: { rule: 'mean' }
  }
}
