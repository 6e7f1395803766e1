// The page side of the JavaScript peer: one livekit-client Room per browser page, driven by
// the harness (tests/harness/jspeer.py) through driver.mjs. Every call is `window.lkpeer.<verb>`
// with JSON arguments and a JSON result; bytes cross as base64. Everything the Room does that a
// test may wait for is reported through the `lkpeerEvent(name, args)` binding that driver.mjs
// exposes, as a flat (name, [args]) record, in the order the page saw it.
import {
  DataPacket_Kind,
  type RemoteParticipant,
  Room,
  RoomEvent,
  RpcError,
  type RpcInvocationData,
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

const api = {
  version: (): string => version,

  /** Join; resolves once connected, with who is already there. */
  async connect(url: string, token: string): Promise<{ identity: string; remotes: string[] }> {
    const r = new Room();
    listen(r);
    await r.connect(url, token, { autoSubscribe: false });
    room = r;
    const remotes = Array.from(r.remoteParticipants.keys());
    emit('connected', r.localParticipant.identity, remotes);
    return { identity: r.localParticipant.identity, remotes };
  },

  async disconnect(): Promise<void> {
    if (room !== null) await room.disconnect();
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
};

window.lkpeer = api;
emit('loaded', version);
