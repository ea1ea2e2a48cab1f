// The compute worker's entry point. Sources are TypeScript run through tsx, and a worker thread starts
// without the loader hooks of the thread that spawned it, so it registers tsx itself.
import { register } from 'tsx/esm/api'

register()
await import('./worker.ts')
