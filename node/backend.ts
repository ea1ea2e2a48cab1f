/**
 * Picks the TensorFlow.js compute backend at start-up.
 *
 * `auto` prefers native TensorFlow (@tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node) when one is
 * installed and loads, then the WebAssembly backend that ships inside its npm package, then pure JS.
 * The native packages download libtensorflow in their install script, which fails on offline machines,
 * so they are optional and detected here at run time (docs/performance.md).
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import * as tf from './tf.js'
import '@tensorflow/tfjs-backend-cpu'
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm'
import { BackendUnavailableError, InvalidArgumentError } from './errors.js'

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const
export type BackendChoice = typeof BACKEND_CHOICES[number]

/** Environment variable read when no --backend flag is given. */
export const BACKEND_ENV = 'FEDGROW_BACKEND'

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const

export function parseBackendChoice (value: string | undefined): BackendChoice {
  const choice = value ?? process.env[BACKEND_ENV] ?? 'auto'
  if (!(BACKEND_CHOICES as readonly string[]).includes(choice)) {
    throw new InvalidArgumentError(`backend "${choice}" is not one of ${BACKEND_CHOICES.join(', ')} (from --backend or ${BACKEND_ENV})`)
  }
  return choice as BackendChoice
}

async function loadNative (): Promise<string> {
  const failures: string[] = []
  for (const pkg of NATIVE_PACKAGES) {
    try {
      await import(pkg)
    } catch (err) {
      failures.push(`${pkg}: ${(err as Error).message.split('\n')[0]}`)
      continue
    }
    // A native package built against another tfjs-core version registers into its own copy of the engine.
    if (tf.findBackend('tensorflow') == null) {
      failures.push(`${pkg} loaded but registered no backend with this @tensorflow/tfjs-core ${tf.version_core}: install the same 4.x version`)
      continue
    }
    await tf.setBackend('tensorflow')
    return pkg
  }
  throw new BackendUnavailableError(
    'native TensorFlow is not available:\n  ' + failures.join('\n  ') +
    '\nInstall it with `npm install @tensorflow/tfjs-node-gpu` (CUDA) or `npm install @tensorflow/tfjs-node` (CPU) ' +
    'on a machine that can download libtensorflow, or use --backend wasm.')
}

async function loadWasm (): Promise<void> {
  const require = createRequire(import.meta.url)
  const distDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/'
  setWasmPaths(distDir)
  if (!await tf.setBackend('wasm')) {
    throw new BackendUnavailableError(`the wasm backend did not initialise from ${distDir}; reinstall @tensorflow/tfjs-backend-wasm or use --backend cpu`)
  }
}

export interface ActiveBackend {
  /** tfjs backend name: tensorflow, wasm or cpu. */
  name: string
  /** Where it came from, for the log line. */
  source: string
}

/** Selects and initialises a backend; throws BackendUnavailableError when an explicit choice cannot load. */
export async function initBackend (choice: BackendChoice): Promise<ActiveBackend> {
  // PROD silences tfjs's console advert for tfjs-node on the cpu backend; fedgrow logs its own backend line.
  tf.env().set('PROD', true)
  switch (choice) {
    case 'tensorflow':
      return { name: 'tensorflow', source: await loadNative() }
    case 'wasm':
      await loadWasm()
      return { name: 'wasm', source: '@tensorflow/tfjs-backend-wasm' }
    case 'cpu':
      await tf.setBackend('cpu')
      return { name: 'cpu', source: '@tensorflow/tfjs-backend-cpu' }
    case 'auto':
      try {
        return { name: 'tensorflow', source: await loadNative() }
      } catch {}
      try {
        return await initBackend('wasm')
      } catch {}
      return await initBackend('cpu')
    default: {
      const unreachable: never = choice
      throw new InvalidArgumentError(`unknown backend ${String(unreachable)}`)
    }
  }
}
