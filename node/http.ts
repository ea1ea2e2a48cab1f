/**
 * A small HTTP server for local tools (metrics, dashboard): fixed routes, GET only, bound to 127.0.0.1
 * unless the user names another host.
 */
import { createServer } from 'node:http'
import { InvalidArgumentError, NetworkError } from './errors.js'
import type { IncomingMessage, ServerResponse } from 'node:http'

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

export interface HttpServer {
  /** e.g. http://127.0.0.1:9464 (the real port when 0 was asked for). */
  url: string
  close: () => Promise<void>
}

/** Parses HOST:PORT, :PORT or PORT (host 127.0.0.1); `flag` names the option in errors. */
export function parseHostPort (text: string, flag: string): { host: string, port: number } {
  const match = /^(?:(.*):)?(\d{1,5})$/.exec(text)
  const port = match === null ? NaN : Number(match[2])
  if (match === null || port > 65535) throw new InvalidArgumentError(`${flag} ${text}: expected HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:9464; port 0 picks a free one)`)
  const host = match[1] === undefined || match[1] === '' ? '127.0.0.1' : match[1].replace(/^\[(.*)\]$/, '$1')
  return { host, port }
}

export async function serveHttp (address: string, flag: string, routes: Record<string, Handler>): Promise<HttpServer> {
  const { host, port } = parseHostPort(address, flag)
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const handler = routes[path]
    if (req.method !== 'GET' || handler === undefined) {
      res.writeHead(req.method !== 'GET' ? 405 : 404, { 'content-type': 'text/plain' }).end(`not found; try ${Object.keys(routes).join(', ')}\n`)
      return
    }
    Promise.resolve(handler(req, res)).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
      res.end(`error: ${err.message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => { reject(new NetworkError(`${flag} ${address}: cannot listen (${(err as NodeJS.ErrnoException).code ?? err.message}); pick another port`)) })
    server.listen(port, host, resolve)
  })
  server.unref()
  const bound = server.address()
  const actualPort = typeof bound === 'object' && bound !== null ? bound.port : port
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    close: async () => { await new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => { resolve() }) }) }
  }
}
