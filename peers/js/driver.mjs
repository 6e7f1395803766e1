// Drives Debian's Chromium (headless) for tests/harness/jspeer.py over stdin/stdout JSON lines.
//
//   node driver.mjs <bundle.js> <chromium binary>
//
// (livekit-client's E2EE worker is read from e2ee-worker.js beside the bundle.)
//
// In:  {"id": n, "op": "open"}                      -> a new page (one participant); result: page id
//      {"id": n, "op": "call", "page": p, "verb": v, "args": [...]}  -> window.lkpeer[v](...args)
//      {"id": n, "op": "close", "page": p}
// Out: {"ready": chromium version} once, then {"id": n, "result": x} or {"id": n, "error": msg}
//      for each request, and {"page": p, "event": name, "args": [...]} for what a page reports.
//
// The page (and the E2EE worker, /e2ee-worker.js) is served by route interception at
// http://localhost/ (a secure context, so crypto.subtle works; nothing goes to the network).
// The browser runs in this process's network namespace (the harness's), with mDNS host candidates off so ICE signals the
// namespace's address itself. End of stdin closes the browser and exits.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [bundlePath, executablePath] = process.argv.slice(2);
const bundle = readFileSync(bundlePath, 'utf8');
const worker = readFileSync(join(dirname(bundlePath), 'e2ee-worker.js'), 'utf8');
const ORIGIN = 'http://localhost';
const HTML = '<!doctype html><meta charset="utf-8"><title>lkpeer</title>' +
  '<script src="/lkpeer.js"></script>';

// A URL the page reports (a failed connection, say) may carry the access token: never echo it.
const TOKEN = /(access_token=)[^&\s'"]+/g;

function send(message) {
  process.stdout.write(JSON.stringify(message).replace(TOKEN, '$1<redacted>') + '\n');
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    // mDNS host candidates off (ICE signals the namespace's address), and no Local Network
    // Access prompt for the page (served at localhost) reaching the server's private address.
    // (Chromium reads the last --disable-features only: this one replaces playwright's own
    // list, which is about screenshots, caches and update checks, none of which matter here.)
    '--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-dev-shm-usage',
    '--disable-gpu',
    // Media devices are fakes and allowed without a prompt (see open()).
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    // The page's AudioContext (a published tone) runs without a user gesture.
    '--autoplay-policy=no-user-gesture-required',
    '--no-first-run',
  ],
});
const pages = new Map();
let nextPage = 1;

async function open() {
  const id = nextPage++;
  // Camera and microphone granted: without media permission Chromium does not enumerate
  // network interfaces for WebRTC (when mDNS obfuscation is off), and then signals only
  // server-reflexive candidates from sockets bound to the any-address.
  const page = await browser.newPage({ permissions: ['camera', 'microphone'] });
  pages.set(id, page);
  await page.exposeFunction('lkpeerEvent', (name, args) => send({ page: id, event: name, args }));
  page.on('pageerror', (err) => send({ page: id, event: 'page_error', args: [String(err)] }));
  page.on('console', (msg) => {
    if (msg.type() === 'error') send({ page: id, event: 'console_error', args: [msg.text()] });
  });
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path === '/lkpeer.js') {
      return route.fulfill({ contentType: 'text/javascript', body: bundle });
    }
    if (path === '/e2ee-worker.js') {
      return route.fulfill({ contentType: 'text/javascript', body: worker });
    }
    return route.fulfill({ contentType: 'text/html', body: HTML });
  });
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => window.lkpeer !== undefined);
  return id;
}

async function handle(request) {
  if (request.op === 'open') return open();
  const page = pages.get(request.page);
  if (page === undefined) throw new Error(`no page ${request.page}`);
  if (request.op === 'close') {
    pages.delete(request.page);
    await page.close();
    return null;
  }
  if (request.op === 'call') {
    return page.evaluate(
      ([verb, args]) => window.lkpeer[verb](...args),
      [request.verb, request.args ?? []],
    );
  }
  throw new Error(`unknown op ${request.op}`);
}

send({ ready: browser.version() });
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const request = JSON.parse(line);
  handle(request).then(
    (result) => send({ id: request.id, result: result ?? null }),
    (err) => send({ id: request.id, error: String(err?.message ?? err) }),
  );
});
lines.on('close', async () => {
  await browser.close().catch(() => {});
  process.exit(0);
});
