/**
 * fedgrow's Prometheus metrics, in the same prom-client registry as libp2p's own
 * (@libp2p/prometheus-metrics), so one scrape of `--metrics HOST:PORT` has both. They are driven by
 * the peer's log events (observe) and sampled at scrape time (peers, bytes per protocol, tensors).
 */
import { Counter, Gauge, Histogram } from 'prom-client'
import { trafficSoFar } from './p2p/traffic.js'
import type { Registry } from 'prom-client'
import type { FedgrowEvent } from './events.js'

export interface MetricsSources {
  /** Peers connected now. */
  peers: () => number
  /** tfjs tensors alive in this peer's compute workers. */
  tensorsAlive: () => number
}

export class FedgrowMetrics {
  private readonly round: Gauge
  private readonly loss: Gauge
  private readonly accuracy: Gauge
  private readonly roundSeconds: Histogram
  private readonly accepted: Counter
  private readonly rejected: Counter<'reason'>

  constructor (private readonly registry: Registry, sources: MetricsSources) {
    const registers = [registry]
    this.round = new Gauge({ name: 'fedgrow_round', help: 'Last completed federated round', registers })
    this.loss = new Gauge({ name: 'fedgrow_local_loss', help: 'Loss of this peer\'s grown model on its own test split, after the last round', registers })
    this.accuracy = new Gauge({ name: 'fedgrow_local_accuracy', help: 'Accuracy (0-1) of this peer\'s grown model on its own test split, after the last round', registers })
    this.roundSeconds = new Histogram({ name: 'fedgrow_round_duration_seconds', help: 'Wall time of each round: local training, exchange and aggregation', buckets: [1, 2, 5, 10, 20, 40, 80, 160, 320], registers })
    this.accepted = new Counter({ name: 'fedgrow_updates_accepted_total', help: 'Peers\' updates fetched, validated and held for aggregation', registers })
    this.rejected = new Counter({ name: 'fedgrow_updates_rejected_total', help: 'Updates dropped, by reason (protocol/README.md)', labelNames: ['reason'], registers })
    // Sampled at scrape time: registering them is all they need.
    registry.registerMetric(new Gauge({ name: 'fedgrow_peers', help: 'Peers connected now', registers: [], collect () { this.set(sources.peers()) } }))
    registry.registerMetric(new Gauge({ name: 'fedgrow_tensors_alive', help: 'tfjs tensors allocated now (steady in a healthy node)', registers: [], collect () { this.set(sources.tensorsAlive()) } }))
    registry.registerMetric(new Gauge({
      name: 'fedgrow_protocol_bytes',
      help: 'Bytes sent and received so far per protocol family (from libp2p\'s transfer counters; "connection" is Noise, Yamux and multistream-select framing)',
      labelNames: ['protocol', 'direction'],
      registers: [],
      async collect () {
        const { byProtocol } = await trafficSoFar(registry)
        for (const [family, bytes] of Object.entries(byProtocol)) {
          this.set({ protocol: family, direction: 'sent' }, bytes.sent)
          this.set({ protocol: family, direction: 'received' }, bytes.received)
        }
      }
    }))
  }

  /** Updates the metrics from one of the peer's log events. */
  observe (e: FedgrowEvent): void {
    if (e.event === 'round') {
      this.round.set(e.round)
      this.loss.set(e.loss)
      this.accuracy.set(e.accuracy)
      this.roundSeconds.observe(e.seconds)
    } else if (e.event === 'rejected') {
      this.rejected.inc({ reason: e.reason })
    } else if (e.event === 'update-accepted') {
      this.accepted.inc()
    }
  }

  async text (): Promise<string> {
    return await this.registry.metrics()
  }
}
