/**
 * Hostile peers for simulations and benchmarks: a Learner that trains honestly, then corrupts the update
 * it shares. Attacks from the Byzantine-robust learning literature (e.g. Karimireddy et al. 2021):
 *   scale     the update's change from the current model, times ATTACK_SCALE
 *   signflip  the change reversed: current - (update - current)
 *   noise     the update plus Gaussian noise of std ATTACK_NOISE_STD on every value
 *   nan       every value NaN (honest peers must reject it outright)
 */
import { Rng } from '../random.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { Learner } from './learner.js'

export const ATTACKS = ['scale', 'signflip', 'noise', 'nan'] as const
export type Attack = typeof ATTACKS[number]

export const ATTACK_SCALE = 10
export const ATTACK_NOISE_STD = 1

function corrupt (attack: Attack, update: TensorMap, current: TensorMap, rng: Rng): TensorMap {
  const out: TensorMap = {}
  for (const [name, t] of Object.entries(update)) {
    const base = current[name].data
    const data = new Float32Array(t.data.length)
    for (let i = 0; i < data.length; i++) {
      switch (attack) {
        case 'scale': data[i] = base[i] + ATTACK_SCALE * (t.data[i] - base[i]); break
        case 'signflip': data[i] = base[i] - (t.data[i] - base[i]); break
        case 'noise': data[i] = t.data[i] + ATTACK_NOISE_STD * rng.normal(); break
        case 'nan': data[i] = NaN; break
      }
    }
    out[name] = { shape: [...t.shape], data }
  }
  return out
}

const allFinite = (tensors: TensorMap): boolean => Object.values(tensors).every(t => t.data.every(Number.isFinite))

/**
 * `learner`, except that every update it shares is corrupted by `attack`. It keeps training from the last
 * finite model it held, so its own corrupted update (which it aggregates too) does not stop it.
 */
export function hostileLearner (learner: Learner, attack: Attack, seed: string): Learner {
  const rng = new Rng(`attack:${attack}:${seed}`)
  let lastFinite: TensorMap | undefined
  const usable = (global: TensorMap): TensorMap => {
    if (allFinite(global)) lastFinite = global
    return lastFinite ?? learner.initial()
  }
  return {
    get spec () { return learner.spec },
    get sampleCount () { return learner.sampleCount },
    initial: () => learner.initial(),
    prepare: (stateDir, log) => { learner.prepare(stateDir, log) },
    trainRound: (global, round) => {
      const current = usable(global)
      const honest = learner.trainRound(current, round)
      return { ...honest, tensors: corrupt(attack, honest.tensors, current, rng) }
    },
    evaluate: (global) => learner.evaluate(usable(global)),
    finalModel: (global) => learner.finalModel(usable(global)),
    dispose: () => { learner.dispose() }
  }
}
