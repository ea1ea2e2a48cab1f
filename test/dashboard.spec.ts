/**
 * The live dashboard in a real browser (Debian's chromium driven by playwright-core; .ci/run installs
 * it): a tiny simulation's plots grow round by round; then the run's HTML report shows the same curves
 * and the comparison table, offline.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'
import { spawnCli } from './helpers.js'

const CHROMIUM = process.env.FEDGROW_CHROMIUM ?? '/usr/bin/chromium'

describe('dashboard and report in a browser', function () {
  this.timeout(240_000)

  before(function () {
    // CI must run this test; elsewhere it is skipped, visibly, when no browser is installed.
    if (!existsSync(CHROMIUM) && process.env.CI === undefined) this.skip()
  })

  it('plots a running simulation live, round by round, and writes a report with the same curves', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fedgrow-dashboard-'))
    const run = spawnCli(['simulate', '--peers', '2', '--rounds', '3', '--preset', 'tiny', '--pretrain-epochs', '2', '--finetune-steps', '0', '--methods', 'fedgrow', '--dashboard', '127.0.0.1:0', '--out', out, '--format', 'json'])
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    try {
      const until = Date.now() + 60_000
      while (!/dashboard at (http:\S+)/.test(run.stderr()) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
      const url = /dashboard at (http:\S+)/.exec(run.stderr())?.[1]
      assert.ok(url !== undefined, `no dashboard address in: ${run.stderr()}`)
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'bound to 127.0.0.1 by default')
      const page = await browser.newPage({ viewport: { width: 1300, height: 1100 } })
      const errors: string[] = []
      page.on('pageerror', (err) => { errors.push(err.message) })
      await page.goto(url)
      const seen = new Set<number>()
      while (!seen.has(6)) {
        const points = Number(await page.locator('#accuracy').getAttribute('data-points') ?? 0)
        seen.add(points)
        if (Date.now() > until + 120_000) assert.fail(`the plot never reached 3 rounds x 2 peers (saw ${[...seen].join(', ')} points)`)
        await page.waitForTimeout(200)
      }
      assert.ok([...seen].filter(n => n > 0 && n < 6).length >= 1, `the plot grew while the run went on (saw ${[...seen].sort((a, b) => a - b).join(', ')} points)`)
      for (const id of ['loss', 'bytes', 'timeline']) assert.ok(Number(await page.locator(`#${id}`).getAttribute('data-points')) > 0, `${id} is plotted`)
      assert.match(await page.locator('#status').textContent() ?? '', /^live: \d+ round results, last round 3/)
      await page.screenshot({ path: join(out, 'dashboard.png'), fullPage: true })
      assert.ok(statSync(join(out, 'dashboard.png')).size > 10_000, 'a screenshot was saved')
      assert.equal(await run.exited, 0, run.stderr())

      await page.goto(pathToFileURL(join(out, 'report.html')).href)
      assert.equal(await page.locator('#accuracy').getAttribute('data-points'), '6')
      assert.match(await page.locator('#results').textContent() ?? '', /fedgrow/)
      assert.match(await page.locator('#status').textContent() ?? '', /^report: 6 round results, last round 3/)
      assert.deepEqual(errors, [])
    } finally {
      run.child.kill()
      await browser.close()
    }
  })
})
