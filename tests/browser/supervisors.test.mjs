// The supervisors' web, end to end, in headless Chromium (Debian's `chromium`, driven by
// playwright-core) against a real outpost-server with the demo programme and two real field
// devices (the `outpost-field` CLI over the mobile core):
// a first supervisor generates a payroll and cannot approve it; two others approve it with
// TOTP codes; two devices pay the same entitlement; the reconciliation page shows it paid
// twice; a supervisor resolves it with a reason; the CSV export holds the page's lines; the
// payroll is signed off. Screenshots of the main pages go to tests/browser/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const SERVER = join(root, 'target', 'debug', 'outpost-server');
const FIELD = join(root, 'target', 'debug', 'outpost-field');
const SHOTS = join(here, 'screenshots');
const PASSWORD = 'outpost-demo-2026';
const DEMO_SECRET = 'OUTPOSTDEMOTOTPSECRETAAAAAAAAAAA';
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find(existsSync);

// RFC 6238 with SHA-1, six digits, 30-second steps: what an authenticator app shows.
function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32(DEMO_SECRET)).update(msg).digest();
  const o = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}
const step = () => Math.floor(Date.now() / 1000 / 30);
// A code is accepted once per user: wait for a step later than the one this user spent.
const spent = new Map();
async function freshCode(user) {
  while (spent.has(user) && step() <= spent.get(user)) await new Promise((r) => setTimeout(r, 500));
  const s = step();
  spent.set(user, s);
  return totp(s);
}

let server, base, dir, browser, cycle;

before(async () => {
  assert.ok(CHROMIUM, 'Debian chromium is not installed (apt-get install chromium)');
  dir = mkdtempSync(join(tmpdir(), 'outpost-web-'));
  // The demo is generated as of today; its cycle (today's month) is in its summary.
  const demo = JSON.parse(execFileSync(SERVER, ['--data', join(dir, 'server'), 'demo'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }));
  cycle = demo.cycle;
  server = spawn(SERVER, ['--data', join(dir, 'server'), 'serve', '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  base = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function logIn(username) {
  const context = await browser.newContext({ locale: 'en-GB' });
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/login\/totp/);
  await page.fill('input[name=code]', await freshCode(username));
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/`);
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function field(db, ...args) {
  return JSON.parse(execFileSync(FIELD, ['--db', db, '--pin', '2468', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
}

async function api(path, body, token, type = 'application/json') {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: type === 'application/json' ? JSON.stringify(body) : body,
  });
  const text = await r.text();
  assert.ok(r.ok, `${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

test('a wrong password or TOTP code does not log in, and pages need a session', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/payrolls`);
  assert.match(page.url(), /\/login$/);
  await shot(page, 'login');
  await page.fill('input[name=username]', 'sup.north1');
  await page.fill('input[name=password]', 'not the password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.flash.error');
  await page.fill('input[name=username]', 'sup.north1');
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/login\/totp/);
  await page.fill('input[name=code]', totp(step() + 10)); // a code from five minutes ahead
  await page.click('button[type=submit]');
  await page.waitForSelector('.flash.error');
  assert.match(await page.textContent('.flash.error'), /not right/);
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/login\/totp$/, 'a password alone opens nothing');
  await context.close();
});

test('a payroll from generation to sign-off, with four eyes and a duplicate payout', async () => {
  // An administrator registers a new household in Ekwendeni, so generation finds someone new.
  const { token } = await api('/api/v1/auth/token', {
    username: 'admin',
    password: PASSWORD,
    code: await freshCode('admin'),
  });
  const csv =
    'id,first_name,last_name,dob,sex,location_name,group_code,individual_role,recipient_info,disability,housing\n' +
    'WEB-1,Thokozani,Nyirenda,1984-03-05,F,N-MZ-01,HH-WEB-1,HEAD,1,no,OWNED\n';
  await api('/api/v1/imports/individuals?plan=CT-HH&status=ACTIVE', csv, token, 'text/csv');

  // The first supervisor generates the supplementary payroll and may not approve it.
  const maker = await logIn('sup.north1');
  await shot(maker, 'dashboard');
  await maker.goto(`${base}/payrolls`);
  await maker.selectOption('select[name=plan]', 'CT-HH');
  await maker.selectOption('select[name=cycle]', cycle);
  await maker.click('#generate button[type=submit]');
  await maker.waitForSelector('.flash.ok');
  const pending = maker.locator('tr', { hasText: 'Waiting for approval' }).filter({ hasText: 'user:sup.north1' }).first();
  await pending.locator('a').click();
  await maker.waitForSelector('#payroll-status');
  const payrollUrl = maker.url();
  assert.match(await maker.textContent('.task'), /You made this change/);
  assert.equal(await maker.locator('form.decide').count(), 0, 'the maker gets no approve button');
  await shot(maker, 'payroll-pending');
  // Forcing the form anyway is refused by the server.
  const taskId = await maker.getAttribute('.task', 'data-task');
  const csrf = await maker.getAttribute('input[name=_csrf]', 'value');
  const forced = await maker.request.post(`${base}/tasks/${taskId}/decide`, {
    form: { _csrf: csrf, verdict: 'approve', code: await freshCode('sup.north1'), back: '/tasks' },
    maxRedirects: 0,
  });
  assert.match(decodeURIComponent((forced.headers().location ?? '').replaceAll('+', ' ')), /someone else must approve/);

  // Two other supervisors approve, each with a fresh TOTP code; a wrong code is refused.
  const second = await logIn('sup.north2');
  const third = await logIn('sup.north3');
  await second.goto(payrollUrl);
  await second.fill('form.decide input[name=code]', '000000');
  await second.click('form.decide button[value=approve]');
  await second.waitForSelector('.flash.error');
  await second.fill('form.decide input[name=code]', await freshCode('sup.north2'));
  await second.click('form.decide button[value=approve]');
  await second.waitForSelector('.flash.ok');
  assert.match(await second.textContent('#payroll-status'), /Waiting for approval/, 'one approval is not enough');
  await third.goto(payrollUrl);
  await third.fill('form.decide input[name=code]', await freshCode('sup.north3'));
  await third.click('form.decide button[value=approve]');
  await third.waitForSelector('.flash.ok');
  assert.match(await third.textContent('#payroll-status'), /Approved/);
  await shot(third, 'payroll-approved');

  // Two devices of the Mzimba agent enrol with codes from the devices page, and both pay the
  // new household's entitlement.
  const devices = [];
  for (const n of [1, 2]) {
    await maker.goto(`${base}/devices`);
    await maker.selectOption('select[name=agent]', 'agent.n-mz');
    await maker.selectOption('select[name=assignment]', 'N-MZ');
    await maker.click('#enrol-form button[type=submit]');
    const code = (await maker.textContent('#enrolment-code')).trim();
    if (n === 1) await shot(maker, 'devices-enrolment');
    const db = join(dir, `device${n}.db`);
    field(db, 'enrol', '--server', base, '--code', code, '--label', `phone ${n}`);
    field(db, 'sync');
    devices.push(db);
  }
  let paid = null;
  let beneficiary = null;
  for (const db of devices) {
    const [b] = field(db, 'search', 'WEB-1');
    beneficiary = b;
    assert.match(b.name, /Nyirenda/);
    const shown = field(db, 'show', b.id);
    const e = shown.entitlements.find((x) => x.amount.amount_minor > 0 && x.remaining_minor > 0);
    assert.ok(e, 'the new entitlement reached the device');
    field(db, 'cash', String(e.amount.amount_minor), e.amount.currency, '--note', 'float');
    field(db, 'pay', '--entitlement', e.id, '--collector', e.recipient_id ?? shown.members[0].id,
      '--amount', String(e.amount.amount_minor), '--currency', e.amount.currency, '--signature', `sig-${db}`);
    field(db, 'sync');
    paid = e;
  }

  // A grievance from the field: the office answers on the web, and the phone sees the
  // answer after its next sync.
  const g = field(devices[0], 'grievance', 'new', '--beneficiary', beneficiary.id,
    '--category', 'WRONG_AMOUNT', '--description', 'Was I paid twice?');
  field(devices[0], 'sync');
  await maker.goto(`${base}/grievances`);
  await maker.click(`a[href="/grievances/${g.record_id}"]`);
  await maker.fill('textarea[name=text]', 'We are checking the second payment.');
  await maker.click('form[action$="/comment"] button[type=submit]');
  await maker.waitForSelector('.flash.ok');
  assert.match(await maker.textContent('#comments'), /checking the second payment/);
  await shot(maker, 'grievance');
  field(devices[0], 'sync');
  const seen = field(devices[0], 'grievance', 'show', g.record_id);
  assert.ok(seen.comments.some((c) => c.text.includes('checking the second payment')), JSON.stringify(seen));

  // The reconciliation page shows the entitlement paid twice.
  await maker.goto(payrollUrl.replace(/\/?$/, '/reconciliation'));
  const twice = maker.locator('table.exceptions tr[data-kind=PAID_TWICE]');
  await twice.waitFor();
  assert.match(await twice.textContent(), /2 payments/);
  const line = maker.locator(`table.lines tr[data-entitlement="${paid.id}"]`);
  assert.equal(await line.getAttribute('data-status'), 'OVERPAID');
  await shot(maker, 'reconciliation-duplicate');

  // The CSV export holds the same lines as the page.
  const pageLines = await maker.locator('table.lines tr[data-entitlement]').evaluateAll((rows) =>
    rows.map((r) => `${r.dataset.entitlement} ${r.dataset.status}`).sort());
  const csvText = await (await maker.request.get(payrollUrl.replace(/\/?$/, '/reconciliation.csv'))).text();
  const csvLines = csvText.trim().split('\n').slice(1).map((l) => {
    const cells = l.match(/("([^"]|"")*"|[^,]*)(,|$)/g).map((c) => c.replace(/,$/, ''));
    return `${cells[0]} ${cells[7]}`;
  }).sort();
  assert.deepEqual(csvLines, pageLines);
  assert.match(csvText, /PAID_TWICE/);

  // Sign-off is refused while exceptions are open; each is resolved with a reason.
  await maker.goto(payrollUrl);
  await maker.click('button:has-text("Request sign-off")');
  await maker.waitForSelector('.flash.error');
  assert.match(await maker.textContent('.flash.error'), /still open/);
  await maker.goto(payrollUrl.replace(/\/?$/, '/reconciliation'));
  while (await maker.locator('table.exceptions form').count() > 0) {
    const form = maker.locator('table.exceptions form').first();
    const kind = await form.locator('xpath=ancestor::tr').getAttribute('data-kind');
    await form.locator('input[name=reason]').fill(
      kind === 'PAID_TWICE' ? 'second device paid in error; recovery agreed with the household' : 'reviewed with the agent');
    await form.locator('button').click();
    await maker.waitForSelector('.flash.ok');
  }
  await maker.selectOption('select[name=show]', 'resolved');
  await maker.locator('table.exceptions tr[data-kind=PAID_TWICE]').filter({ hasText: 'recovery agreed' }).waitFor();
  await shot(maker, 'reconciliation-resolved');

  // The maker asks for sign-off; another supervisor signs it off with a TOTP code.
  await maker.goto(payrollUrl);
  await maker.click('button:has-text("Request sign-off")');
  await maker.waitForSelector('.flash.ok');
  await second.goto(payrollUrl);
  await second.fill('form.decide input[name=code]', await freshCode('sup.north2'));
  await second.click('form.decide button[value=approve]');
  await second.waitForSelector('.flash.ok');
  assert.match(await second.textContent('#payroll-status'), /Closed/);
  await shot(second, 'payroll-closed');

  // The other main pages render, in French too.
  for (const [path, name] of [['/tasks', 'tasks'], ['/grievances', 'grievances'], ['/beneficiaries?q=Nyirenda', 'beneficiaries']]) {
    await second.goto(`${base}${path}`);
    await shot(second, name);
  }
  await second.click('button[value=fr]');
  await second.waitForSelector('html[lang=fr]');
  assert.match(await second.textContent('nav'), /Tableau de bord/);
  await shot(second, 'beneficiaries-fr');
});
