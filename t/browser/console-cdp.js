// Drives the admin console in headless Chromium over the DevTools
// protocol (Node's built-in WebSocket, run with --experimental-websocket
// on Node 20; no npm packages) and checks what an operator does:
// expand a log entry with the keyboard, retry a failed job, clear the log
// after confirming, and read the page on a phone-sized screen.
//
//   node --experimental-websocket t/browser/console-cdp.js \
//       http://127.0.0.1:PORT/admin/ docs/console.png JOB
//
// JOB is the id of a real failed job (console-test.sh makes one: an order
// SiteFlow refuses).  Prints "ok N - ..." lines and exits non-zero on a
// failure.

'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const http = require('http');

const base = process.argv[2];
const shot = process.argv[3];
const jobId = process.argv[4];
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';

let n = 0, failed = 0;
function ok(cond, name) {
  n++;
  if (!cond) { failed++; }
  console.log((cond ? 'ok ' : 'not ok ') + n + ' - ' + name);
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    }).on('error', reject);
  });
}

async function main() {
  // The profile lives under the caller's directory (console-test.sh
  // removes it with the rest); Chromium runs in a process group of its
  // own so that every child (renderer, GPU, utility, crashpad) is stopped
  // and gone before anything is removed.
  const profile = fs.mkdtempSync(path.join(process.env.SF_PROFILE_DIR
                                           || os.tmpdir(), 'sf-chromium-'));
  const browser = spawn(chromium, [
    '--headless=new', '--no-sandbox', '--disable-gpu',
    '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars',
    '--remote-debugging-port=0', '--user-data-dir=' + profile,
    '--window-size=1200,900', 'about:blank'
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  browserGroup = browser.pid;
  browserProfile = profile;

  const wsUrl = await new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error('no DevTools URL: ' + err)),
                         30000);
    browser.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
  });

  const ws = new WebSocket(wsUrl);
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });

  let id = 0;
  const pending = new Map();
  const handlers = [];
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id && pending.has(m.id)) {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.error) { p.reject(new Error(JSON.stringify(m.error))); }
      else { p.resolve(m.result); }
    } else if (m.method) {
      handlers.forEach((h) => h(m));
    }
  };
  function send(method, params, sessionId) {
    return new Promise((resolve, reject) => {
      const msg = { id: ++id, method: method, params: params || {} };
      if (sessionId) { msg.sessionId = sessionId; }
      pending.set(msg.id, { resolve, reject });
      ws.send(JSON.stringify(msg));
    });
  }

  const { targetId } = await send('Target.createTarget',
                                  { url: 'about:blank' });
  const { sessionId } = await send('Target.attachToTarget',
                                   { targetId, flatten: true });
  const s = (method, params) => send(method, params, sessionId);

  async function evaluate(expr) {
    const r = await s('Runtime.evaluate',
                      { expression: expr, returnByValue: true,
                        awaitPromise: true });
    if (r.exceptionDetails) {
      throw new Error('evaluate: ' + JSON.stringify(r.exceptionDetails));
    }
    return r.result.value;
  }
  async function waitFor(expr, what, ms) {
    const end = Date.now() + (ms || 10000);
    while (Date.now() < end) {
      if (await evaluate(expr)) { return true; }
      await sleep(100);
    }
    throw new Error('timed out waiting for ' + what);
  }

  let dialogs = 0;

  handlers.push((m) => {
    if (m.sessionId !== sessionId) { return; }
    if (m.method === 'Page.javascriptDialogOpening') {
      dialogs++;
      s('Page.handleJavaScriptDialog', { accept: true }).catch(() => {});
    }
  });

  async function job() {
    const r = await get(base + 'queue');
    const j = JSON.parse(r.body).jobs.filter((x) => x.id === jobId);
    return j.length ? j[0] : null;
  }

  const before = await job();
  ok(before && before.state === 'failed' && before.attempts === 1,
     'job ' + jobId + ' failed once, waiting for a person');

  await s('Page.enable');
  await s('Runtime.enable');
  await s('Emulation.setDeviceMetricsOverride',
          { width: 1200, height: 900, deviceScaleFactor: 1,
            mobile: false });
  await s('Page.navigate', { url: base });

  await waitFor('document.querySelectorAll("details.entry").length >= 2',
                'log entries');
  ok(true, 'the console lists the log entries');

  ok(await evaluate('document.getElementById("storefront").textContent' +
                    '.indexOf("acme") >= 0'),
     'the storefront name is shown');

  ok(await evaluate('(function () { var e = document.querySelectorAll(' +
                    '"details.entry .url"); return e[0].textContent ===' +
                    ' "/ship/shipment?token=***" && e[1].textContent ===' +
                    ' "/ship/shipment"; })()'),
     'newest first, token redacted');

  // expand the newest entry with the keyboard

  await evaluate('document.querySelector("details.entry summary").focus()');
  await s('Input.dispatchKeyEvent', { type: 'keyDown', key: 'Enter',
                                      code: 'Enter', text: '\r',
                                      unmodifiedText: '\r',
                                      windowsVirtualKeyCode: 13 });
  await s('Input.dispatchKeyEvent', { type: 'keyUp', key: 'Enter',
                                      code: 'Enter',
                                      windowsVirtualKeyCode: 13 });
  await waitFor('document.querySelector("details.entry").open',
                'the entry to open');
  ok(true, 'Enter on a focused entry expands it');

  ok(await evaluate('document.querySelector("details.entry .req pre")' +
                    '.textContent.indexOf(\'\\n  "orderNumber": "1002"\')' +
                    ' >= 0'),
     'the request JSON is pretty-printed');
  ok(await evaluate('document.querySelector("details.entry .res pre")' +
                    '.textContent.indexOf(\'"shipped": true\') >= 0'),
     'the response is shown');

  // retry the failed job

  await waitFor('document.querySelector("button.retry") !== null',
                'the retry button');
  ok(await evaluate('document.querySelector("#queue-body").textContent' +
                    '.indexOf("unknown sku BC-XX") >= 0'),
     'the failed job shows its last error');

  await s('Page.captureScreenshot', { format: 'png' }).then((r) => {
    fs.writeFileSync(shot, Buffer.from(r.data, 'base64'));
  });
  ok(fs.statSync(shot).size > 10000, 'screenshot saved to ' + shot);

  await evaluate('document.querySelector("button.retry").click()');
  await waitFor('document.getElementById("message").textContent ===' +
                ' "Job ' + jobId + ' queued again."', 'the retry');
  ok(true, 'Retry says the job is queued again');

  // the job really ran again: SiteFlow refused it a second time

  const end = Date.now() + 10000;
  let again = await job();
  while (Date.now() < end && !(again && again.attempts >= 2
                               && again.state === 'failed')) {
    await sleep(100);
    again = await job();
  }
  ok(again && again.attempts === 2 && again.state === 'failed',
     'the retried job was delivered again (attempts ' +
     (again ? again.attempts : '?') + ')');

  // the entry stays open across a refresh

  const openId = await evaluate('document.querySelector("details.entry' +
                                '[open]").dataset.id');
  await evaluate('document.getElementById("refresh").click()');
  await sleep(300);
  ok(await evaluate('document.querySelector("details.entry[data-id=\\"' +
                    openId + '\\"]").open'),
     'an expanded entry stays expanded after a refresh');

  // clear the log after confirming

  await evaluate('document.getElementById("clear-log").click()');
  await waitFor('document.getElementById("log-list").textContent' +
                ' === "No log entries."', 'the log to clear');
  ok(dialogs === 1, 'Clear Log asks for confirmation');
  const after = await get(base + 'log');
  ok(after.status === 200 && after.body === '{"entries":[]}\n',
     'the log is empty on the server');

  // a phone-sized screen: nothing wider than the screen

  await s('Emulation.setDeviceMetricsOverride',
          { width: 390, height: 844, deviceScaleFactor: 2, mobile: true });
  await sleep(300);
  ok(await evaluate('document.documentElement.scrollWidth <= 390'),
     'no horizontal scrolling at 390 px');

  ws.close();
  await stopBrowser();
}

let browserGroup = 0;
let browserProfile = null;

function groupAlive(pgid) {
  try { process.kill(-pgid, 0); return true; } catch (e) { return false; }
}

// SIGTERM to Chromium's whole process group, wait until no process of
// the group is left (SIGKILL after 10 s), then remove the profile.
async function stopBrowser() {
  if (!browserGroup) { return; }
  const pgid = browserGroup;
  browserGroup = 0;
  try { process.kill(-pgid, 'SIGTERM'); } catch (e) { /* gone */ }
  for (let i = 0; groupAlive(pgid); i++) {
    if (i === 100) {
      try { process.kill(-pgid, 'SIGKILL'); } catch (e) { /* gone */ }
    }
    if (i > 200) { throw new Error('chromium did not exit'); }
    await sleep(100);
  }
  if (browserProfile) {
    fs.rmSync(browserProfile, { recursive: true, force: true,
                                maxRetries: 10, retryDelay: 100 });
  }
}

main().then(() => {
  console.log('1..' + n);
  process.exit(failed ? 1 : 0);
}, async (e) => {
  ok(false, e.message);
  try { await stopBrowser(); } catch (e2) { ok(false, e2.message); }
  console.log('1..' + n);
  process.exit(1);
});
