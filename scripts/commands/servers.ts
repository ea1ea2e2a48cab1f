/** The --metrics and --dashboard flags: local HTTP servers a long run can be watched through. */
import { Registry } from 'prom-client'
import { serveHttp } from '../../node/http.js'
import { startDashboard } from '../../node/dashboard/index.js'
import { optionalString } from '../args.js'
import type { Dashboard } from '../../node/dashboard/index.js'
import type { HttpServer } from '../../node/http.js'
import type { Flags, FlagSpec } from '../args.js'

export const METRICS_FLAG: Record<string, FlagSpec> = {
  metrics: { type: 'string', value: 'HOST:PORT', help: 'serve Prometheus metrics (libp2p\'s and fedgrow\'s) at http://HOST:PORT/metrics; HOST defaults to 127.0.0.1, port 0 picks one' }
}

export const DASHBOARD_FLAG: Record<string, FlagSpec> = {
  dashboard: { type: 'string', value: 'HOST:PORT', help: 'serve a live dashboard at http://HOST:PORT/ while this runs; HOST defaults to 127.0.0.1, port 0 picks one' }
}

/** Serves a fresh registry on --metrics, if given; says where on stderr. */
export async function serveMetricsFlag (flags: Flags, who: string): Promise<(HttpServer & { registry: Registry }) | undefined> {
  const address = optionalString(flags, 'metrics')
  if (address === undefined) return undefined
  const registry = new Registry()
  const server = await serveHttp(address, '--metrics', {
    '/metrics': async (_req, res) => { res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics()) }
  })
  process.stderr.write(`${who}: Prometheus metrics at ${server.url}/metrics\n`)
  return { ...server, registry }
}

/** Starts the dashboard on --dashboard, if given; says where on stderr. */
export async function serveDashboardFlag (flags: Flags, title: string, who: string): Promise<Dashboard | undefined> {
  const address = optionalString(flags, 'dashboard')
  if (address === undefined) return undefined
  const dashboard = await startDashboard(address, title)
  process.stderr.write(`${who}: dashboard at ${dashboard.url}/\n`)
  return dashboard
}
