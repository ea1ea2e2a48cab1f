/**
 * How averaging scales: tiny-preset federations of 16, 64 and 256 peers in one process (real libp2p on
 * 127.0.0.1), each run with all-to-all averaging and with group averaging, side by side. Reports what a
 * peer pays per round (bytes, and in payloads of its Global-LiGO), round time, memory, how far the
 * peers' Global-LiGOs spread, and accuracy. `--preset small` measures the same at a Global-LiGO almost
 * six times larger, where what a round costs besides the payloads weighs less.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simulate } from '../../node/simulation/index.js'
import type { CurvePoint } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { createLogger } from '../../node/log.js'
import { DEFAULTS } from '../../protocol/constants.js'
import type { ByteCounts } from '../../node/federation/transport.js'
import { ROUND_ENDINGS } from '../../node/federation/round-state.js'
import { flagValue, markdownTable, utcMinute, writeSection } from './report.js'

const DEFAULT_SIZES = [16, 64, 256]
const DEFAULT_PRESET = 'tiny'
const DEFAULT_ROUNDS = 3
const BYTES_PER_PARAM = 4

interface Scheme {
  name: string
  groupSize?: number
}

/** One measured federation, kept in RUNS_DIR so that later runs of other sizes join the same table. */
interface ScaleRun {
  peers: number
  scheme: string
  /** The simulation's seed (shards, small models, training order); absent in runs older than the flag, which used 0. */
  seed?: number
  /** The simulation preset; absent in runs older than the flag, which used tiny. */
  preset?: string
  rounds: number
  row: Array<string | number>
  payloadBytes: number
  /** Bytes a peer sent and received per round, by protocol family (node/p2p/traffic.ts); absent in runs older than the split. */
  bytesByProtocol?: Record<string, ByteCounts>
  /** Announcements a peer published on the topic, and told one partner, per round; absent in runs older than the counts. */
  announcementsPerPeerPerRound?: number
  announcementsToldPerPeerPerRound?: number
  /** What a peer paid per round from round 2 on (steadyRounds); absent in runs older than it, or of one round. */
  afterFirstRound?: SteadyRounds
  /** Per round: how full rounds were and why they closed; absent in runs older than the count. */
  fillByRound?: Array<CurvePoint['fill']>
  /** When, and on which commit of this repository, it was measured: rows of different code can share the table. */
  measuredAt: string
  commit: string
}

/** Per peer per round, rounds after the first. */
interface SteadyRounds {
  bytesSent: number
  payloadsServed: number
  /** Bytes sent by protocol family; absent in runs older than the split. */
  bytesSentByProtocol?: Record<string, number>
}

/**
 * Rounds after the first, on their own: round 1 also pays for start-up (a new peer's catch-up asks for
 * whole states; peers that do not yet know each other form groups from partial views and fetch outside
 * their later groups), which a federation pays once, not every round.
 */
function steadyRounds (curve: CurvePoint[]): SteadyRounds | undefined {
  if (curve.length < 2) return undefined
  const later = curve.slice(1)
  const bytesSentByProtocol: Record<string, number> = {}
  for (const p of later) for (const [family, sent] of Object.entries(p.bytesSentByProtocolPerPeer)) bytesSentByProtocol[family] = (bytesSentByProtocol[family] ?? 0) + sent / later.length
  return {
    bytesSent: (curve[curve.length - 1].bytesSentPerPeer - curve[0].bytesSentPerPeer) / later.length,
    payloadsServed: later.reduce((sum, p) => sum + p.payloadsServedPerPeer, 0) / later.length,
    bytesSentByProtocol
  }
}

const RUNS_DIR = join('runs', 'scale')

function currentCommit (): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown' // not a git checkout (e.g. an unpacked tarball): the row says so
  }
}

/** Read once, at start: the code that runs is what was checked out then, whatever is committed during a long run. */
const COMMIT_AT_START = currentCommit()

function saveRun (run: ScaleRun): void {
  mkdirSync(RUNS_DIR, { recursive: true })
  const seedPart = (run.seed ?? 0) === 0 ? '' : `-seed-${run.seed}`
  const presetPart = (run.preset ?? DEFAULT_PRESET) === DEFAULT_PRESET ? '' : `-preset-${run.preset}`
  // Runs of other lengths are other rows (schemeLabel), so they are other files.
  const roundsPart = run.rounds === DEFAULT_ROUNDS ? '' : `-rounds-${run.rounds}`
  writeFileSync(join(RUNS_DIR, `${run.peers}-${run.scheme.replace(/[^a-z0-9]+/g, '-')}${presetPart}${seedPart}${roundsPart}.json`), JSON.stringify(run, null, 1))
}

/** Every run kept, by federation size, then seed, all-to-all first, then by rounds. */
function savedRuns (): ScaleRun[] {
  const runs = readdirSync(RUNS_DIR).filter(f => f.endsWith('.json')).map(f => JSON.parse(readFileSync(join(RUNS_DIR, f), 'utf8')) as ScaleRun)
  return runs.sort((a, b) => a.peers - b.peers || (a.seed ?? 0) - (b.seed ?? 0) || Number(b.scheme === 'all-to-all') - Number(a.scheme === 'all-to-all') || a.rounds - b.rounds)
}

async function runOne (peers: number, rounds: number, scheme: Scheme, seed: number, preset: string): Promise<ScaleRun> {
  const rssBefore = process.memoryUsage().rss
  let peakRss = rssBefore
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss) }, 200)
  const roundSeconds: number[] = []
  let previous = 0
  const tag = `[${peers} peers, ${scheme.name}, seed ${seed}, preset ${preset}]`
  const result = await simulate({
    peers,
    rounds,
    preset: PRESETS[preset],
    alpha: 100,
    methods: ['fedgrow'],
    seed,
    backend: 'wasm',
    ...(scheme.groupSize !== undefined ? { groupSize: scheme.groupSize } : {}),
    outDir: mkdtempSync(join(tmpdir(), `fedgrow-scale-${peers}-`)),
    log: (e) => {
      if (e.event === 'simulation-round') {
        roundSeconds.push(e.seconds - previous)
        previous = e.seconds
      }
      createLogger('text', (line) => { process.stderr.write(`${tag} ${line}\n`) })(e)
    }
  })
  clearInterval(sampler)
  const m = result.methods[0]
  const last = m.curve[m.curve.length - 1]
  const payloadBytes = BYTES_PER_PARAM * m.sharedParamsPerRound
  const row = [
    peers,
    scheme.name,
    Math.round(m.bytesSentPerPeerPerRound).toLocaleString('en-US'),
    m.payloadsSentPerPeerPerRound.toFixed(1),
    `${((m.bytesSentPerPeerPerRound - m.payloadsSentPerPeerPerRound * payloadBytes) / 1024).toFixed(0)} KiB`,
    roundSeconds.map(s => s.toFixed(0)).join(', '),
    m.wallSeconds.toFixed(0),
    `${(peakRss / 2 ** 20).toFixed(0)} MiB`,
    `${((peakRss - rssBefore) / peers / 2 ** 20).toFixed(1)} MiB`,
    `${(100 * last.spread.mean).toFixed(2)}% / ${(100 * last.spread.max).toFixed(2)}%`,
    `${(100 * m.accuracy.mean).toFixed(2)}%`
  ]
  return { peers, scheme: scheme.name, seed, ...(preset === DEFAULT_PRESET ? {} : { preset }), rounds, row, payloadBytes, bytesByProtocol: m.bytesByProtocolPerPeerPerRound, announcementsPerPeerPerRound: m.announcementsPerPeerPerRound, announcementsToldPerPeerPerRound: m.announcementsToldPerPeerPerRound, afterFirstRound: steadyRounds(m.curve), fillByRound: m.curve.map(p => p.fill), measuredAt: utcMinute(), commit: COMMIT_AT_START }
}

export async function scaleBench (command: string, args: string[]): Promise<void> {
  const sizes = (flagValue(args, '--peers') ?? DEFAULT_SIZES.join(',')).split(',').map(Number)
  const rounds = Number(flagValue(args, '--rounds') ?? DEFAULT_ROUNDS)
  const groupSize = Number(flagValue(args, '--group-size') ?? DEFAULTS.groupSize)
  const seed = Number(flagValue(args, '--seed') ?? 0)
  const preset = flagValue(args, '--preset') ?? DEFAULT_PRESET
  if (PRESETS[preset] === undefined || PRESETS[preset].tokenizer !== undefined) throw new Error(`--preset: '${preset}' is not an image preset; use one of ${Object.keys(PRESETS).filter(name => PRESETS[name].tokenizer === undefined).join(', ')}`)
  const schemes = chosenSchemes(flagValue(args, '--schemes') ?? SCHEME_NAMES.join(','), groupSize)
  // Each run is saved and the section rewritten at once, so that a long run that fails late keeps what
  // it measured, and a run of other sizes adds its rows to the earlier ones (each row names its code).
  // --report rewrites the section from the saved runs alone, running nothing.
  if (args.includes('--report')) {
    writeScaleSection(command, groupSize, savedRuns())
    return
  }
  for (const peers of sizes) {
    for (const scheme of schemes) {
      saveRun(await runOne(peers, rounds, scheme, seed, preset))
      writeScaleSection(command, groupSize, savedRuns())
    }
  }
}

const SCHEME_NAMES = ['all-to-all', 'group'] as const

/** The schemes `--schemes` names, in the order given: all-to-all at 256 peers would run for hours. */
function chosenSchemes (list: string, groupSize: number): Scheme[] {
  return list.split(',').map(name => {
    if (name === 'all-to-all') return { name }
    if (name === 'group') return { name: `group (${groupSize}+)`, groupSize }
    throw new Error(`--schemes: unknown averaging scheme '${name}'; use ${SCHEME_NAMES.join(' and/or ')}, comma-separated`)
  })
}

/**
 * What the per-protocol split showed, kept here so that a re-run keeps it (the section is rewritten
 * whole); its numbers name the commit they were measured on.
 */
const WHERE_OTHER_GOES = 'What a peer sends besides the payloads (KiB a peer a round, from round 2, in the second and fourth tables; how each rule below was found, and what it changed run by run, is in docs/method.md from "Group averaging" on). Gossipsub carries the announcements: each one on the topic reaches every peer, and each peer forwards it along its mesh (1.6 to 4 KiB sent per peer per announcement, measured), so with group averaging a peer announces on the topic only in its first round and its presence rounds (about 8 peers a round, at any size) and tells its group directly otherwise (f78edbe and 73b6fda took 64 peers from 24.2 payloads\' worth a round to 9.2). "state" is catch-ups: a peer that fell behind asks up to 8 peers for their round and digest, then fetches only the state it adopts (with groups, one per distinct digest). "connection" is Noise, Yamux and multistream-select framing, mostly libp2p\'s pings (every 10 s on every connection, each a stream of its own; pinging once a minute was tried and reverted, docs/method.md). "view" is view completion: a round short of its quorum asks 3 partners whom they have heard from (0a2974e). Waiting rounds pay for pings and re-announcements by the second: with view completion, 64-peer group rounds closed at the hard deadline 10 times in 5 rounds instead of 92, and a peer sent 7.8 payloads\' worth a round from round 2 instead of 9.5 (connection framing 54 against 92 KiB a round). What keeps group averaging above its aim of about 3 at 64 peers: the payloads themselves (each update fetched by its 3 to 6 partners, and again by late peers catching up), gossip (first-round and presence announcements, and the first trained round of each peer that caught up), catch-ups (36 of 64 peers caught up in round 1, as the training queue of 2 workers spreads the peers over minutes) and pings. A 64-peer run varies from run to run by about 2 payloads\' worth. At 256 peers in one process on 2 cores, gossipsub delivered about a quarter of the announcements, so no peer came to know of the quorum of 256 and nearly every round closed at the hard deadline; view completion did not change that (1f7bd93; not traced: a name counts only once two partners name it, and each partner knows only part of the federation). None of those costs grows with the payload, so a larger Global-LiGO shows what the payloads themselves cost: at the small preset (312 KiB a payload, 5.8 times the tiny one\'s; 776e00a, one run each), groups sent 3.3, 3.5 and 4.9 payloads\' worth a round from round 2 at 16, 32 and 64 peers, of which the payloads were 2.9, 2.8 and 2.5; the rest grew with rounds that 2 cores stretch (64 peers\' rounds took 80 to 689 s, 93 of their 192 closed at the hard deadline, and connection framing, mostly pings, was 453 KiB a round), not with the scheme. Near 3 payloads\' worth at the tiny preset would take a butterfly all-reduce (each member reduces one slice of the update and sends about 2 payloads, whatever the group size; its reducers would have to be trusted, where today every update is checked against its author\'s announcement) and fewer catch-ups than 2 cores allow 64 peers; neither is built.'

function writeScaleSection (command: string, groupSize: number, runs: ScaleRun[]): void {
  const payloadSizes = new Map(runs.map(r => [r.preset ?? DEFAULT_PRESET, r.payloadBytes]))
  const payload = [...payloadSizes].map(([preset, bytes]) => `${(bytes / 1024).toFixed(1)} KiB at the ${preset} preset`).join(', ')
  const rounds = [...new Set(runs.map(r => r.rounds))].join(' or ')
  writeSection('scale', 'Scale: all-to-all against group averaging (fedgrow; preset tiny unless a row names another)', command, [
    `One process holds every peer (real libp2p nodes on 127.0.0.1 on the main thread; training on the compute workers, one per core). ${rounds} rounds each, alpha 100, seed 0 unless the averaging column names another; every peer bootstraps from peer 0. Group averaging: groups of ${groupSize} to ${2 * groupSize - 1} peers, redrawn every round (protocol/groups.ts).`,
    `"payloads" is how many whole Global-LiGO payloads (${payload} each) a peer served per round, on average; "other" is the rest of its bytes sent (rows before 99556d9 re-announced every 2 s and sent 903-byte announcements, later ones back off from 2 s to 16 s and send 338 bytes); the second table splits every byte by protocol. "round s" is the time from one round's last peer to the next's (round 1 includes preparing every peer). Memory per peer is the growth of the process's peak RSS during the run over the peers. "spread" is the consensus distance after the last round: each peer's Global-LiGO's distance from the peers' mean, relative to the mean's norm (mean / max over peers). Rows are kept from earlier runs of other sizes and name the commit they measured: the engine may have changed between them (\`git log -- node/federation protocol/groups.ts\`).`,
    '',
    WHERE_OTHER_GOES,
    '',
    markdownTable(['peers', 'averaging', 'bytes sent/peer/round', 'payloads', 'other', 'round s', 'wall s', 'peak RSS', 'memory per peer', 'spread mean / max', 'accuracy mean', 'measured (UTC, commit)'], runs.map(r => [r.row[0], schemeLabel(r), ...r.row.slice(2), `${r.measuredAt}, ${r.commit}`])),
    ...steadyTable(runs),
    ...fillTable(runs),
    ...protocolTable(runs)
  ].join('\n'))
}

/** A run's scheme, with its preset, seed and rounds where they are not the defaults. */
function schemeLabel (run: ScaleRun): string {
  const preset = (run.preset ?? DEFAULT_PRESET) === DEFAULT_PRESET ? [] : [`preset ${run.preset}`]
  const seed = (run.seed ?? 0) === 0 ? [] : [`seed ${run.seed}`]
  const rounds = run.rounds === DEFAULT_ROUNDS ? [] : [`${run.rounds} rounds`]
  return [run.scheme, ...preset, ...seed, ...rounds].join(', ')
}

/** The families that the steady table splits out: the payloads themselves, and the three largest of the rest. */
const STEADY_FAMILIES = ['payload', 'gossipsub', 'state', 'connection']

/** What each run paid per round once started, in bytes and in payloads' worth, for runs that measured it. */
function steadyTable (runs: ScaleRun[]): string[] {
  const measured = runs.filter((r): r is ScaleRun & { afterFirstRound: SteadyRounds } => r.afterFirstRound !== undefined)
  if (measured.length === 0) return []
  return [
    '',
    `From round 2 on (round 1 also pays for start-up: catch-up states, and groups formed from partial views), per peer per round: bytes sent, payloads served, the rest, and all of it in payloads' worth (the group scheme's aim: about 3); then KiB sent by ${STEADY_FAMILIES.join(', ')} ('-': a run older than the split).`,
    '',
    markdownTable(['peers', 'averaging', 'bytes sent/peer/round', 'payloads', 'other', 'payloads\' worth', ...STEADY_FAMILIES, 'measured (UTC, commit)'], measured.map(r => {
      const { bytesSent, payloadsServed, bytesSentByProtocol } = r.afterFirstRound
      const family = (f: string): string => bytesSentByProtocol === undefined ? '-' : ((bytesSentByProtocol[f] ?? 0) / 1024).toFixed(1)
      return [r.peers, schemeLabel(r), Math.round(bytesSent).toLocaleString('en-US'), payloadsServed.toFixed(1), `${((bytesSent - payloadsServed * r.payloadBytes) / 1024).toFixed(0)} KiB`, (bytesSent / r.payloadBytes).toFixed(1), ...STEADY_FAMILIES.map(family), `${r.measuredAt}, ${r.commit}`]
    }))
  ]
}

/** How full each run's rounds were and why they closed, round by round, for runs that counted it. */
function fillTable (runs: ScaleRun[]): string[] {
  const measured = runs.filter((r): r is ScaleRun & { fillByRound: Array<CurvePoint['fill']> } => r.fillByRound !== undefined)
  if (measured.length === 0) return []
  const perRound = (r: { fillByRound: Array<CurvePoint['fill']> }, f: (fill: CurvePoint['fill']) => string): string => r.fillByRound.map(f).join(', ')
  return [
    '',
    'Round by round: "heard" is the updates a peer averaged over the participants it waited for (its group, or everyone), mean over peers that aggregated; then how many peers\' rounds closed because everyone waited for had reported, at the adaptive deadline, at the hard deadline (`schedule.roundTimeoutMs` after the peer\'s own update, closing with what arrived), or by adopting peers\' state.',
    '',
    markdownTable(['peers', 'averaging', 'heard', ...ROUND_ENDINGS, 'measured (UTC, commit)'], measured.map(r => [
      r.peers,
      schemeLabel(r),
      perRound(r, f => `${(100 * f.heardOfExpected).toFixed(0)}%`),
      ...ROUND_ENDINGS.map(reason => perRound(r, f => String(f.closedBy[reason] ?? 0))),
      `${r.measuredAt}, ${r.commit}`
    ]))
  ]
}

/**
 * Where a peer's bytes went: KiB sent per round by protocol family (node/p2p/traffic.ts), the family
 * that sent most first, for every run that measured it; received in parentheses.
 */
function protocolTable (runs: ScaleRun[]): string[] {
  const measured = runs.filter((r): r is ScaleRun & { bytesByProtocol: Record<string, ByteCounts> } => r.bytesByProtocol !== undefined)
  if (measured.length === 0) return []
  const most = new Map<string, number>()
  for (const r of measured) for (const [family, bytes] of Object.entries(r.bytesByProtocol)) most.set(family, Math.max(most.get(family) ?? 0, bytes.sent))
  const families = [...most].sort(([, a], [, b]) => b - a).map(([family]) => family)
  const kib = (bytes: number): string => (bytes / 1024).toFixed(1)
  return [
    '',
    'KiB sent (received) per peer per round, by protocol: "payload" and "state" are fedgrow\'s streams (a state answer carries a whole Global-LiGO when asked for it), "connection" is what no stream counts (the Noise handshake and tags, Yamux headers and window updates, multistream-select). "announcements" is how many a peer published on the topic per round, re-announcements included, and "told" how many it delivered to one partner directly instead: re-announcements, and from f78edbe on, group averaging\'s announcements outside a peer\'s first round and presence rounds (\'-\': a run older than the count).',
    '',
    markdownTable(['peers', 'averaging', 'announcements', 'told', ...families, 'measured (UTC, commit)'], measured.map(r => [r.peers, schemeLabel(r), r.announcementsPerPeerPerRound?.toFixed(1) ?? '-', r.announcementsToldPerPeerPerRound?.toFixed(1) ?? '-', ...families.map(f => {
      const bytes = r.bytesByProtocol[f]
      return bytes === undefined ? '0' : `${kib(bytes.sent)} (${kib(bytes.received)})`
    }), `${r.measuredAt}, ${r.commit}`]))
  ]
}
