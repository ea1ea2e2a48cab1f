/**
 * The dashboard page (page.html), live or as a run's self-contained report: with `data`, the run's
 * events and results are embedded, so the file opens from disk, offline, with every curve.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { LogEvent } from '../log.js'

const DATA_ELEMENT = '<script id="fedgrow-data" type="application/json">null</script>'

export function renderPage (title: string, data?: { events: LogEvent[], results: unknown }): string {
  const page = readFileSync(fileURLToPath(new URL('./page.html', import.meta.url)), 'utf8').replaceAll('{{TITLE}}', title.replace(/[<>&"]/g, ''))
  if (data === undefined) return page
  // "<" escaped so no string in the data can close the script element.
  return page.replace(DATA_ELEMENT, `<script id="fedgrow-data" type="application/json">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>`)
}
