/**
 * The live dashboard: one self-contained page (page.html: inline script and SVG, nothing fetched from
 * elsewhere) and a server-sent-events stream of the run's events. A browser that connects late first
 * gets the history, so its plots start from round 1.
 */
import { serveHttp } from '../http.js'
import { renderPage } from './page.js'
import type { ServerResponse } from 'node:http'
import type { HttpServer } from '../http.js'
import type { LogEvent } from '../log.js'

/** Events kept for browsers that connect later (a long run's rounds, rejections and peer samples). */
const HISTORY_LIMIT = 20_000
/** Comment lines that keep idle connections open through proxies. */
const KEEPALIVE_MS = 15_000
/** Events the page plots; the rest (progress, listening, ...) are not sent. */
export const PLOTTED = new Set(['round', 'simulation-round', 'rejected', 'peers', 'method', 'fault', 'done', 'caught-up'])

export interface Dashboard extends HttpServer {
  publish: (event: LogEvent) => void
}

export async function startDashboard (address: string, title: string): Promise<Dashboard> {
  const page = renderPage(title)
  const history: string[] = []
  const clients = new Set<ServerResponse>()
  const server = await serveHttp(address, '--dashboard', {
    '/': (_req, res) => { res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page) },
    '/favicon.ico': (_req, res) => { res.writeHead(204).end() },
    '/events': (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      for (const line of history) res.write(line)
      clients.add(res)
      req.on('close', () => { clients.delete(res) })
    }
  })
  const keepalive = setInterval(() => { for (const c of clients) c.write(': keepalive\n\n') }, KEEPALIVE_MS)
  keepalive.unref()
  return {
    url: server.url,
    publish (event) {
      if (!PLOTTED.has(event.event)) return
      const line = `data: ${JSON.stringify({ ...event, t: Date.now() })}\n\n`
      history.push(line)
      if (history.length > HISTORY_LIMIT) history.shift()
      for (const c of clients) c.write(line)
    },
    close: async () => {
      clearInterval(keepalive)
      for (const c of clients) c.end()
      await server.close()
    }
  }
}
