// livekit-client's end-to-end encryption worker, bundled on its own (dist/e2ee-worker.js) and
// served to the page at /e2ee-worker.js by driver.mjs (page.ts's `connect` with a key).
import 'livekit-client/e2ee-worker';
