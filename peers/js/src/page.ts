// The page side of the JavaScript peer: one livekit-client Room per browser page, driven by
// the harness (tests/harness/jspeer.py) through driver.mjs. Every call is `window.lkpeer.<verb>`
// with JSON arguments and a JSON result; bytes cross as base64. Everything the Room does that a
// test may wait for is reported through the `lkpeerEvent(name, args)` binding that driver.mjs
// exposes, as a flat (name, [args]) record, in the order the page saw it.
import {
  DataPacket_Kind,
  ExternalE2EEKeyProvider,
  type LocalDataTrack,
  type RemoteDataTrack,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  Room,
  RoomEvent,
  RpcError,
  type RpcInvocationData,
  type SimulationScenario,
  Track,
  version,
} from 'livekit-client';

declare global {
  interface Window {
    lkpeerEvent: (name: string, args: unknown[]) => Promise<void>;
    lkpeer: typeof api;
  }
}

function emit(name: string, ...args: unknown[]): void {
  void window.lkpeerEvent(name, args);
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function errorFields(err: unknown): { code: number | null; message: string; data: string | null } {
  if (err instanceof RpcError) {
    return { code: err.code, message: err.message, data: err.data ?? null };
  }
  return { code: null, message: String(err), data: null };
}

let room: Room | null = null;

function current(): Room {
  if (room === null) throw new Error('not connected');
  return room;
}

function listen(r: Room): void {
  r.on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) =>
    emit('participant_connected', p.identity),
  );
  r.on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) =>
    emit('participant_disconnected', p.identity),
  );
  r.on(RoomEvent.DataReceived, (payload, participant, kind, topic, encryptionType, identity) =>
    emit(
      'data',
      participant?.identity ?? identity ?? null,
      toBase64(payload),
      topic ?? null,
      kind === DataPacket_Kind.RELIABLE ? 'reliable' : 'lossy',
      encryptionType ?? null,
    ),
  );
  // The participant's values after the change (the metadata event's argument is the old one).
  r.on(RoomEvent.ParticipantAttributesChanged, (changed, p) =>
    emit('attributes', p.identity, changed, p.attributes),
  );
  r.on(RoomEvent.ParticipantMetadataChanged, (_old, p) => emit('metadata', p.identity, p.metadata ?? null));
  r.on(RoomEvent.ParticipantNameChanged, (name, p) => emit('name', p.identity, name));
  r.on(RoomEvent.Disconnected, (reason) => emit('disconnected', reason ?? null));
  r.on(RoomEvent.Reconnecting, () => emit('reconnecting'));
  r.on(RoomEvent.Reconnected, () => emit('reconnected'));
}

// -- media and data tracks ----------------------------------------------------------------------

// Chromium's "breakout box" (MediaStreamTrackProcessor): the frames a remote track decodes to,
// read directly (PCM as AudioData, pictures as VideoFrame), with no element or WebAudio graph.
declare class MediaStreamTrackProcessor<T> {
  constructor(init: { track: MediaStreamTrack });
  readonly readable: ReadableStream<T>;
}

const AUDIO_CAP = 48000 * 30; // samples kept per track (30 s at 48 kHz), the newest
const VIDEO_CAP = 1000; // pictures kept per track

/** PCM of one remote audio track: the first channel, as float samples, at `rate`. */
type Heard = { rate: number; chunks: Float32Array[]; samples: number; frames: number };
/** Pictures of one remote video track: [width, height, [r, g, b] of the centre] each. */
type Watched = { frames: [number, number, [number, number, number]][] };

const heard = new Map<string, Heard>();
const watched = new Map<string, Watched>();
const localMedia = new Map<string, () => void>(); // track sid -> stop its source
const localDataTracks = new Map<string, LocalDataTrack>();
const remoteDataTracks = new Map<string, RemoteDataTrack>();

async function readAudio(sid: string, track: MediaStreamTrack): Promise<void> {
  const reader = new MediaStreamTrackProcessor<AudioData>({ track }).readable.getReader();
  const into: Heard = { rate: 0, chunks: [], samples: 0, frames: 0 };
  heard.set(sid, into);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const pcm = new Float32Array(value.numberOfFrames);
    value.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
    const target = heard.get(sid) ?? into;
    target.rate = value.sampleRate;
    target.chunks.push(pcm);
    target.samples += pcm.length;
    target.frames += 1;
    while (target.samples - target.chunks[0].length >= AUDIO_CAP) {
      target.samples -= target.chunks.shift()!.length;
    }
    value.close();
  }
}

async function readVideo(sid: string, track: MediaStreamTrack): Promise<void> {
  const reader = new MediaStreamTrackProcessor<VideoFrame>({ track }).readable.getReader();
  watched.set(sid, { frames: [] });
  const canvas = new OffscreenCanvas(1, 1);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    const w = value.displayWidth;
    const h = value.displayHeight;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.drawImage(value, 0, 0);
    value.close();
    const [r, g, b] = ctx.getImageData(Math.floor(w / 2), Math.floor(h / 2), 1, 1).data;
    const target = watched.get(sid)!;
    target.frames.push([w, h, [r, g, b]]);
    if (target.frames.length > VIDEO_CAP) target.frames.shift();
  }
}

function listenTracks(r: Room): void {
  r.on(RoomEvent.TrackPublished, (pub: RemoteTrackPublication, p: RemoteParticipant) =>
    emit('track_published', p.identity, pub.trackSid, pub.kind, pub.trackName),
  );
  r.on(RoomEvent.TrackUnpublished, (pub: RemoteTrackPublication, p: RemoteParticipant) =>
    emit('track_unpublished', p.identity, pub.trackSid),
  );
  r.on(
    RoomEvent.TrackSubscribed,
    (track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant) => {
      const sid = pub.trackSid;
      let reading: Promise<void>;
      if (track.kind === Track.Kind.Audio) {
        // Chromium decodes a remote audio track only while something plays it out: an
        // element does (into the headless browser's fake output).
        document.body.appendChild(track.attach());
        reading = readAudio(sid, track.mediaStreamTrack);
      } else {
        reading = readVideo(sid, track.mediaStreamTrack);
      }
      reading.catch((err) => emit('media_error', sid, String(err)));
      emit('track_subscribed', p.identity, sid, track.kind, pub.trackName);
    },
  );
  r.on(RoomEvent.TrackUnsubscribed, (_t: RemoteTrack, pub: RemoteTrackPublication, p) =>
    emit('track_unsubscribed', p.identity, pub.trackSid),
  );
  r.on(RoomEvent.TrackSubscriptionFailed, (sid, p, reason) =>
    emit('track_subscription_failed', p.identity, sid, String(reason)),
  );
  r.on(RoomEvent.TrackMuted, (pub, p) => emit('track_muted', p.identity, pub.trackSid));
  r.on(RoomEvent.TrackUnmuted, (pub, p) => emit('track_unmuted', p.identity, pub.trackSid));
  r.on(RoomEvent.LocalTrackPublished, (pub) => emit('local_track_published', pub.trackSid));
  r.on(RoomEvent.LocalTrackSubscribed, (pub) => emit('local_track_subscribed', pub.trackSid));
  r.on(RoomEvent.DataTrackPublished, (track: RemoteDataTrack) => {
    remoteDataTracks.set(track.info.sid, track);
    emit(
      'data_track_published',
      track.info.sid,
      track.info.name,
      track.publisherIdentity,
      track.info.usesE2ee,
    );
  });
  r.on(RoomEvent.DataTrackUnpublished, (sid: string) => emit('data_track_unpublished', sid));
  r.on(RoomEvent.EncryptionError, (err, participant) =>
    emit('encryption_error', participant?.identity ?? null, String(err)),
  );
  r.on(RoomEvent.ParticipantEncryptionStatusChanged, (encrypted, p) =>
    emit('encryption_status', p?.identity ?? null, encrypted),
  );
}

/** A solid canvas of `colours[floor(n / fps / seconds) % len]` at frame n, as a track. */
function colourTrack(
  colours: [number, number, number][],
  width: number,
  height: number,
  fps: number,
  seconds: number,
): { track: MediaStreamTrack; stop: () => void } {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  document.body.appendChild(canvas);
  const ctx = canvas.getContext('2d')!;
  const stream = canvas.captureStream(fps);
  let n = 0;
  const paint = (): void => {
    const [r, g, b] = colours[Math.floor(n / (fps * seconds)) % colours.length];
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(0, 0, width, height);
    n += 1;
  };
  paint();
  const timer = setInterval(paint, 1000 / fps);
  const track = stream.getVideoTracks()[0];
  return {
    track,
    stop: () => {
      clearInterval(timer);
      track.stop();
      canvas.remove();
    },
  };
}

const api = {
  version: (): string => version,

  /** Join; resolves once connected, with who is already there. With `e2eeKey`, the Room
   * encrypts (data packets, streams, RPC, data tracks, media) under that shared passphrase
   * (`ExternalE2EEKeyProvider.setKey(string)`: PBKDF2, as lkproto's and the native SDKs'
   * default), its worker served at /e2ee-worker.js. */
  async connect(
    url: string,
    token: string,
    options: { autoSubscribe?: boolean; e2eeKey?: string | null } = {},
  ): Promise<{ identity: string; remotes: string[] }> {
    let r: Room;
    if (options.e2eeKey) {
      const keyProvider = new ExternalE2EEKeyProvider();
      await keyProvider.setKey(options.e2eeKey);
      r = new Room({ encryption: { keyProvider, worker: new Worker('/e2ee-worker.js') } });
      await r.setE2EEEnabled(true);
    } else {
      r = new Room();
    }
    listen(r);
    listenTracks(r);
    await r.connect(url, token, { autoSubscribe: options.autoSubscribe ?? false });
    room = r;
    const remotes = Array.from(r.remoteParticipants.keys());
    emit('connected', r.localParticipant.identity, remotes);
    return { identity: r.localParticipant.identity, remotes };
  },

  async disconnect(): Promise<void> {
    if (room !== null) await room.disconnect();
  },

  /** `room.simulateScenario(scenario)`: with 'signal-reconnect', the Room closes its signal
   * connection as if it had dropped, and resumes (recorded as "reconnecting", "reconnected"). */
  async simulateScenario(scenario: SimulationScenario): Promise<void> {
    await current().simulateScenario(scenario);
  },

  remotes: (): string[] => Array.from(current().remoteParticipants.keys()),

  /** A remote participant's (attributes, metadata, name) as this page sees them. */
  remote(identity: string): [Record<string, string>, string | null, string | null] {
    const p = current().remoteParticipants.get(identity);
    if (p === undefined) throw new Error(`no remote participant ${identity}`);
    return [p.attributes, p.metadata ?? null, p.name ?? null];
  },

  async setAttributes(attributes: Record<string, string>): Promise<void> {
    await current().localParticipant.setAttributes(attributes);
  },

  async setMetadata(metadata: string): Promise<void> {
    await current().localParticipant.setMetadata(metadata);
  },

  async setName(name: string): Promise<void> {
    await current().localParticipant.setName(name);
  },

  async publishData(
    data: string,
    reliable: boolean,
    topic: string | null,
    destinations: string[],
  ): Promise<void> {
    await current().localParticipant.publishData(fromBase64(data), {
      reliable,
      topic: topic ?? undefined,
      destinationIdentities: destinations,
    });
  },

  /** `send_text`; resolves with the stream id. */
  async sendText(
    text: string,
    topic: string,
    destinations: string[],
    attributes: Record<string, string>,
  ): Promise<string> {
    const info = await current().localParticipant.sendText(text, {
      topic,
      destinationIdentities: destinations,
      attributes,
    });
    return info.id;
  },

  /** `send_file` of `data` (base64) as a File called `name`; resolves with the stream id. */
  async sendFile(
    name: string,
    data: string,
    topic: string,
    destinations: string[],
  ): Promise<string> {
    const file = new File([fromBase64(data)], name, { type: 'application/octet-stream' });
    const { id } = await current().localParticipant.sendFile(file, {
      topic,
      destinationIdentities: destinations,
    });
    return id;
  },

  /** Read every text stream on `topic`: ("text", sender, topic, attributes, text, id, size)
   * or ("text_error", sender, topic, message). */
  onText(topic: string): void {
    current().registerTextStreamHandler(topic, (reader, { identity }) => {
      const info = reader.info;
      reader.readAll().then(
        (text) =>
          emit('text', identity, info.topic, info.attributes ?? {}, text, info.id, info.size ?? null),
        (err) => emit('text_error', identity, info.topic, String(err)),
      );
    });
  },

  /** Read every byte stream on `topic`: ("bytes", sender, name, topic, size, sha256, id) or
   * ("bytes_error", sender, topic, message). */
  onBytes(topic: string): void {
    current().registerByteStreamHandler(topic, (reader, { identity }) => {
      const info = reader.info;
      reader.readAll().then(
        async (chunks) => {
          const total = chunks.reduce((n, c) => n + c.length, 0);
          const all = new Uint8Array(total);
          let at = 0;
          for (const c of chunks) {
            all.set(c, at);
            at += c.length;
          }
          emit('bytes', identity, info.name, info.topic, total, await sha256(all), info.id);
        },
        (err) => emit('bytes_error', identity, info.topic, String(err)),
      );
    });
  },

  /** Register `method`: it records ("rpc_invoked", method, caller, payload, timeout ms),
   * waits `delayMs`, and answers with `prefix + payload`, or, if `error` is given, throws
   * RpcError(code, message, data); with `throwPlain`, a plain Error (which livekit-client
   * reports as 1500). */
  registerRpc(
    method: string,
    prefix: string,
    error: { code: number; message: string; data: string | null } | null,
    throwPlain: boolean,
    delayMs: number,
  ): void {
    current().registerRpcMethod(method, async (data: RpcInvocationData) => {
      emit('rpc_invoked', method, data.callerIdentity, data.payload, data.responseTimeout);
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (throwPlain) throw new Error('a plain failure from the JS handler');
      if (error !== null) throw new RpcError(error.code, error.message, error.data ?? undefined);
      return prefix + data.payload;
    });
  },

  unregisterRpc(method: string): void {
    current().unregisterRpcMethod(method);
  },

  /** `performRpc`; resolves with {ok: reply} or {error: {code, message, data}}. */
  async performRpc(
    destination: string,
    method: string,
    payload: string,
    timeoutMs: number | null,
  ): Promise<{ ok?: string; error?: ReturnType<typeof errorFields> }> {
    try {
      const reply = await current().localParticipant.performRpc({
        destinationIdentity: destination,
        method,
        payload,
        responseTimeout: timeoutMs ?? undefined,
      });
      return { ok: reply };
    } catch (err) {
      return { error: errorFields(err) };
    }
  },
  // -- media ------------------------------------------------------------------------------------

  /** Publish a sine of `freq` Hz (OscillatorNode -> MediaStreamAudioDestinationNode) as a
   * microphone track called `name`; resolves with the track sid. */
  async publishTone(freq: number, name: string): Promise<string> {
    const ctx = new AudioContext({ sampleRate: 48000 });
    await ctx.resume();
    const oscillator = new OscillatorNode(ctx, { type: 'sine', frequency: freq });
    const gain = new GainNode(ctx, { gain: 0.5 });
    const destination = ctx.createMediaStreamDestination();
    oscillator.connect(gain).connect(destination);
    oscillator.start();
    const track = destination.stream.getAudioTracks()[0];
    const pub = await current().localParticipant.publishTrack(track, {
      name,
      source: Track.Source.Microphone,
    });
    localMedia.set(pub.trackSid, () => {
      oscillator.stop();
      void ctx.close();
    });
    return pub.trackSid;
  },

  /** Publish solid pictures of `width` x `height` from a canvas at `fps`, each colour for
   * `seconds`, in turn (VP8, one layer); resolves with the track sid. */
  async publishColours(
    colours: [number, number, number][],
    width: number,
    height: number,
    fps: number,
    seconds: number,
    name: string,
  ): Promise<string> {
    const { track, stop } = colourTrack(colours, width, height, fps, seconds);
    const pub = await current().localParticipant.publishTrack(track, {
      name,
      source: Track.Source.Camera,
      simulcast: false,
      videoEncoding: { maxBitrate: 1_000_000, maxFramerate: fps },
      // Chromium lowers the resolution of a camera under CPU or bandwidth pressure: the test
      // checks the size, so keep it.
      degradationPreference: 'maintain-resolution',
    });
    localMedia.set(pub.trackSid, stop);
    return pub.trackSid;
  },

  async unpublishTrack(sid: string): Promise<void> {
    const track = current().localParticipant.trackPublications.get(sid)?.track;
    if (track === undefined) throw new Error(`no local track ${sid}`);
    await current().localParticipant.unpublishTrack(track);
    localMedia.get(sid)?.();
    localMedia.delete(sid);
  },

  /** Subscribe to a remote participant's track (the Room joins with autoSubscribe off). */
  subscribe(identity: string, sid: string): void {
    const p = current().remoteParticipants.get(identity);
    const pub = p?.trackPublications.get(sid);
    if (pub === undefined) throw new Error(`no track ${sid} of ${identity}`);
    pub.setSubscribed(true);
  },

  /** Forget what a subscribed track delivered so far (a fresh measurement window). */
  clearMedia(sid: string): void {
    const a = heard.get(sid);
    if (a !== undefined) heard.set(sid, { rate: a.rate, chunks: [], samples: 0, frames: 0 });
    if (watched.has(sid)) watched.set(sid, { frames: [] });
  },

  /** The PCM an audio track delivered since the last clear: its rate, the number of
   * AudioData frames, and the first channel as base64 int16 (little-endian). */
  audio(sid: string): { rate: number; frames: number; pcm: string } {
    const a = heard.get(sid);
    if (a === undefined) return { rate: 0, frames: 0, pcm: '' };
    const out = new Int16Array(a.samples);
    let at = 0;
    for (const chunk of a.chunks) {
      for (let i = 0; i < chunk.length; i++) {
        out[at++] = Math.max(-32768, Math.min(32767, Math.round(chunk[i] * 32767)));
      }
    }
    return { rate: a.rate, frames: a.frames, pcm: toBase64(new Uint8Array(out.buffer)) };
  },

  /** The pictures a video track delivered since the last clear: [width, height, rgb]. */
  video(sid: string): [number, number, [number, number, number]][] {
    return watched.get(sid)?.frames ?? [];
  },

  // -- data tracks --------------------------------------------------------------------------------

  /** `publishDataTrack`; resolves with [sid, usesE2ee]. */
  async publishDataTrack(name: string): Promise<[string, boolean]> {
    const track = await current().localParticipant.publishDataTrack({ name });
    const info = track.info!;
    localDataTracks.set(info.sid, track);
    return [info.sid, info.usesE2ee];
  },

  /** `tryPush` of `data` (base64) with an optional user timestamp (a decimal string, as it
   * is a u64); resolves with null, or the error's message. */
  async pushDataFrame(sid: string, data: string, userTimestamp: string | null): Promise<string | null> {
    const track = localDataTracks.get(sid);
    if (track === undefined) throw new Error(`no local data track ${sid}`);
    try {
      await track.tryPush({
        payload: fromBase64(data),
        userTimestamp: userTimestamp === null ? undefined : BigInt(userTimestamp),
      });
      return null;
    } catch (err) {
      return String(err);
    }
  },

  async unpublishDataTrack(sid: string): Promise<void> {
    const track = localDataTracks.get(sid);
    if (track === undefined) throw new Error(`no local data track ${sid}`);
    await track.unpublish();
  },

  /** Subscribe to a remote data track: records ("data_track_frame", sid, bytes, user
   * timestamp or null) for each frame, then ("data_track_ended", sid, error or null). */
  subscribeDataTrack(sid: string): void {
    const track = remoteDataTracks.get(sid);
    if (track === undefined) throw new Error(`no remote data track ${sid}`);
    const reader = track.subscribe({ bufferSize: 64 }).getReader();
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const ts = value.userTimestamp;
          emit('data_track_frame', sid, toBase64(value.payload), ts === undefined ? null : ts.toString());
        }
        emit('data_track_ended', sid, null);
      } catch (err) {
        emit('data_track_ended', sid, String(err));
      }
    })();
  },
};

window.lkpeer = api;
emit('loaded', version);
