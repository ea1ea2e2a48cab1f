/**
 * Peers behind NATs: Linux network namespaces built by the test (namespace-local addresses only). A relay
 * (`fedgrow testnet up --relay`) sits on the "public" side; two peers sit behind separate masquerading
 * routers, so neither can reach the other directly. Knowing only the relay's preset and the federation,
 * they find each other through the DHT, connect through the relay and complete a round.
 * Needs root (CAP_NET_ADMIN), `ip` and `iptables`: .ci/run installs iptables and sets CI, which makes
 * the test required; elsewhere it is skipped, visibly, when these are missing.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { roundStory, runCli, spawnCli } from './helpers.js'
import type { CliProcess } from './helpers.js'

const tag = `fg${process.pid % 10000}`
const ns = { pub: `${tag}pub`, nat1: `${tag}nat1`, nat2: `${tag}nat2`, peer1: `${tag}p1`, peer2: `${tag}p2` }

const sh = (...args: string[]): void => { execFileSync(args[0], args.slice(1), { stdio: 'pipe' }) }
const inNs = (name: string, ...args: string[]): void => { sh('ip', 'netns', 'exec', name, ...args) }

function canBuildNamespaces (): boolean {
  if (process.getuid?.() !== 0) return false
  try {
    sh('ip', '-V')
    sh('iptables', '-V')
    return true
  } catch {
    return false
  }
}

/** A veth pair from namespace a (address addrA) to namespace b (address addrB, or bridged into br0). */
function link (a: string, ifA: string, addrA: string, b: string, ifB: string, addrB: string | 'bridge'): void {
  sh('ip', 'link', 'add', ifA, 'netns', a, 'type', 'veth', 'peer', 'name', ifB, 'netns', b)
  inNs(a, 'ip', 'addr', 'add', addrA, 'dev', ifA)
  inNs(a, 'ip', 'link', 'set', ifA, 'up')
  if (addrB === 'bridge') inNs(b, 'ip', 'link', 'set', ifB, 'master', 'br0')
  else inNs(b, 'ip', 'addr', 'add', addrB, 'dev', ifB)
  inNs(b, 'ip', 'link', 'set', ifB, 'up')
}

function buildNetwork (): void {
  for (const name of Object.values(ns)) {
    sh('ip', 'netns', 'add', name)
    inNs(name, 'ip', 'link', 'set', 'lo', 'up')
  }
  // "Public" side: a bridge in pub, with the relay on 10.99.0.1 and each router's outside on it.
  inNs(ns.pub, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
  inNs(ns.pub, 'ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'br0')
  inNs(ns.pub, 'ip', 'link', 'set', 'br0', 'up')
  for (const [i, router, peer] of [[1, ns.nat1, ns.peer1], [2, ns.nat2, ns.peer2]] as const) {
    link(router, 'wan', `10.99.0.${1 + i}/24`, ns.pub, `up${i}`, 'bridge')
    link(router, 'lan', `192.168.9${i}.1/24`, peer, 'eth0', `192.168.9${i}.2/24`)
    inNs(peer, 'ip', 'route', 'add', 'default', 'via', `192.168.9${i}.1`)
    inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
    inNs(router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE')
  }
}

function removeNetwork (): void {
  for (const name of Object.values(ns)) {
    try { sh('ip', 'netns', 'del', name) } catch { /* not created */ }
  }
}

describe('peers behind NATs, through a relay', function () {
  this.timeout(300_000)

  before(function () {
    if (!canBuildNamespaces() && process.env.CI === undefined) this.skip()
    removeNetwork()
    buildNetwork()
  })

  after(() => { removeNetwork() })

  it('connect through the relay and complete a federation round', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-nat-'))
    const fed = join(dir, 'fed.json')
    const init = await runCli(['federation', 'init', '--rounds', '1', '--quorum', '2', '--local-steps', '2', '--local-ligo-steps', '2', '--intermediate-dim', '24', '--intermediate-layers', '2', '--target-dim', '32', '--target-layers', '2', '--round-timeout-ms', '120000', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    const id = /federation id ([0-9a-f]{64})/.exec(init.stderr)![1]
    const pre = await runCli(['pretrain', '--dim', '16', '--layers', '1', '--steps', '2', '--out', join(dir, 'small.fgm')])
    assert.equal(pre.code, 0, pre.stderr)
    const preset = join(dir, 'net.json')
    const relay = spawnCli(['testnet', 'up', '--nodes', '1', '--host', '10.99.0.1', '--port', '4201', '--relay', '--addresses', 'any', '--name', 'nat-test', '--out', preset], ['ip', 'netns', 'exec', ns.pub])
    const peers: CliProcess[] = []
    try {
      const until = Date.now() + 60_000
      while (!existsSync(preset) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
      assert.ok(existsSync(preset), relay.stderr())
      await new Promise(resolve => setTimeout(resolve, 500))
      const node = (i: number, federation: string[]): CliProcess => spawnCli(['node', ...federation, '--network', preset, '--model', join(dir, 'small.fgm'), '--shard', `${i - 1}/2`, '--state-dir', join(dir, `peer${i}`), '--listen', `/ip4/192.168.9${i}.2/tcp/0`, '--log', 'json', '--local'], ['ip', 'netns', 'exec', i === 1 ? ns.peer1 : ns.peer2])
      peers.push(node(1, ['--federation', fed]))
      peers.push(node(2, ['--federation-id', id]))
      const codes = await Promise.all(peers.map(async p => await p.exited))
      assert.deepEqual(codes, [0, 0], peers.map(p => p.stderr().slice(-3000)).join('\n-----\n'))
      const done = peers.map(p => p.lines().find(l => l.event === 'done')!)
      assert.equal(done[0].globalDigest, done[1].globalDigest, `both peers end on one Global-LiGO:\n${peers.map(p => roundStory(p.lines())).join('\n-----\n')}`)
      for (const p of peers) {
        const round = p.lines().find(l => l.event === 'round')!
        assert.ok(round.peersHeard === 2 || round.caughtUp === true, JSON.stringify(round))
        assert.ok(p.lines().some(l => l.event === 'relayed-link'), 'the peers met through the relay')
      }
      const upgraded = peers.some(p => p.lines().some(l => l.event === 'direct-link'))
      process.stdout.write(`      (hole punch ${upgraded ? 'upgraded the relayed link to a direct one' : 'did not upgrade the link: the round ran over the relay'})\n`)
      assert.match(readFileSync(preset, 'utf8'), /10\.99\.0\.1\/tcp\/4201/)
    } finally {
      for (const p of peers) p.child.kill('SIGINT')
      relay.child.kill('SIGINT')
      await relay.exited
    }
  })
})
