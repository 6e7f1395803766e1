// Command lkproto-go-peer is a LiveKit participant built on the Go server SDK
// (github.com/livekit/server-sdk-go/v2, on pion), driven by the lkproto test harness.
//
// It reads one JSON command per line on stdin and writes one JSON event per line on stdout
// (tests/harness/gopeer.py is the other side; peers/go/README.md lists every command and
// event). Every command may carry an "id"; it is answered by a "result" event with the same
// id, {"ok": true, ...} or {"ok": false, "error": "..."}. Byte payloads travel as base64.
//
// The token never appears in argv or in any output: it comes in the "connect" command (or
// in LIVEKIT_TOKEN, with LIVEKIT_URL, to connect at start). ICE confinement is the caller's
// job: the SDK builds its own pion SettingEngine, so this program cannot restrict the
// interfaces pion gathers from; the harness runs it inside its network namespace, whose
// only non-loopback address is the harness's (pion leaves loopback out by default, and its
// default mDNS mode, query-only, announces no .local candidate).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
)

// command is the union of every command's fields; each command reads the ones it needs.
type command struct {
	Cmd          string            `json:"cmd"`
	ID           *int64            `json:"id,omitempty"`
	URL          string            `json:"url"`
	Token        string            `json:"token"`
	Payload      string            `json:"payload"` // base64 for data and bytes; text for RPC
	Text         string            `json:"text"`
	Reliable     *bool             `json:"reliable"`
	Topic        string            `json:"topic"`
	Name         string            `json:"name"`
	Destinations []string          `json:"destinations"`
	Attributes   map[string]string `json:"attributes"`
	Method       string            `json:"method"`
	Mode         string            `json:"mode"` // RPC handler: echo | repeat | error | plain_error
	Repeat       int               `json:"repeat"`
	Code         uint32            `json:"code"`
	Message      string            `json:"message"`
	Data         *string           `json:"data"`
	Destination  string            `json:"destination"`
	TimeoutMs    int64             `json:"timeout_ms"`
	E2EEKey      string            `json:"e2ee_key"` // connect: a shared passphrase
	Scenario     string            `json:"scenario"` // simulate: signal_reconnect
	Metadata     string            `json:"metadata"`
	// Media commands (media.go).
	Path   string `json:"path"`
	Sid    string `json:"sid"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	// Benchmark commands (flood, count_data, rpc_bench).
	Size        int   `json:"size"`
	Count       int   `json:"count"`
	Expect      int   `json:"expect"`
	Calls       int   `json:"calls"`
	Concurrency int   `json:"concurrency"`
	GapMs       int64 `json:"gap_ms"`
	LimitMs     int64 `json:"limit_ms"`
}

type peer struct {
	outMu sync.Mutex
	out   *json.Encoder
	room  *lksdk.Room

	// count_data: while counting is set, user packets are counted instead of reported.
	countMu  sync.Mutex
	counting bool
	counter  dataCounter

	// Media (media.go): recordings asked for, by track sid, and those under way.
	mediaMu    sync.Mutex
	wanted     map[string]string
	recordings map[string]*recorder
}

type dataCounter struct {
	expect, count int
	bytes         int64
	firstNs       int64
	lastNs        int64
}

func (p *peer) emit(event string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["event"] = event
	p.outMu.Lock()
	defer p.outMu.Unlock()
	_ = p.out.Encode(fields)
}

func (p *peer) reply(c command, fields map[string]any, err error) {
	if fields == nil {
		fields = map[string]any{}
	}
	if c.ID != nil {
		fields["id"] = *c.ID
	}
	fields["cmd"] = c.Cmd
	fields["ok"] = err == nil
	if err != nil {
		fields["error"] = err.Error()
	}
	p.emit("result", fields)
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (p *peer) callbacks() *lksdk.RoomCallback {
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(rp *lksdk.RemoteParticipant) {
		p.emit("participant_connected", map[string]any{"identity": rp.Identity()})
	}
	cb.OnParticipantDisconnected = func(rp *lksdk.RemoteParticipant) {
		p.emit("participant_disconnected", map[string]any{"identity": rp.Identity()})
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		p.emit("disconnected", map[string]any{"reason": string(reason)})
	}
	cb.OnTrackPublished = func(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		p.emit("track_published", map[string]any{
			"identity": rp.Identity(), "sid": pub.SID(), "name": pub.Name(),
			"kind": string(pub.Kind()), "mime": pub.MimeType(), "source": pub.Source().String(),
		})
	}
	cb.OnTrackUnpublished = func(pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
		p.emit("track_unpublished", map[string]any{"identity": rp.Identity(), "sid": pub.SID()})
	}
	cb.OnTrackSubscribed = p.onSubscribed
	p.watchParticipants(cb)
	cb.OnReconnecting = func() { p.emit("reconnecting", nil) }
	cb.OnReconnected = func() { p.emit("reconnected", nil) }
	// The SDK does not say which channel (reliable or lossy) a packet came on: no "kind".
	cb.ParticipantCallback.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		user, ok := data.(*lksdk.UserDataPacket)
		if ok && p.countData(len(user.Payload)) {
			return
		}
		if !ok {
			p.emit("data_other", map[string]any{"sender": params.SenderIdentity, "type": fmt.Sprintf("%T", data)})
			return
		}
		p.emit("data", map[string]any{
			"sender":  params.SenderIdentity,
			"payload": base64.StdEncoding.EncodeToString(user.Payload),
			"topic":   user.Topic,
		})
	}
	return cb
}

func (p *peer) connect(c command) error {
	opts := []lksdk.ConnectOption{
		lksdk.WithAutoSubscribe(false),
		lksdk.WithDisableRegionDiscovery(),
		lksdk.WithConnectTimeout(20 * time.Second),
	}
	encrypted, err := encryption(c.E2EEKey)
	if err != nil {
		return err
	}
	if encrypted != nil {
		opts = append(opts, encrypted)
	}
	if err := p.room.JoinWithToken(c.URL, c.Token, opts...); err != nil {
		return err
	}
	// JoinWithToken returns once the subscriber peer connection is connected; what others
	// send reaches us on its data channels, over SCTP, which comes up just after. Wait for it,
	// so a test may send to us as soon as we have joined.
	if pc := p.room.LocalParticipant.GetSubscriberPeerConnection(); pc != nil {
		deadline := time.Now().Add(10 * time.Second)
		for pc.SCTP().State() != webrtc.SCTPTransportStateConnected {
			if time.Now().After(deadline) {
				return errors.New("the subscriber's SCTP transport did not connect within 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var others []string
	for _, rp := range p.room.GetRemoteParticipants() {
		others = append(others, rp.Identity())
	}
	if others == nil {
		others = []string{}
	}
	p.emit("joined", map[string]any{
		"identity":     p.room.LocalParticipant.Identity(),
		"room":         p.room.Name(),
		"participants": others,
		"protocol":     lksdk.PROTOCOL,
		"sdk_version":  lksdk.Version,
	})
	return nil
}

func (p *peer) publishData(c command) error {
	payload, err := base64.StdEncoding.DecodeString(c.Payload)
	if err != nil {
		return fmt.Errorf("payload is not base64: %w", err)
	}
	reliable := c.Reliable == nil || *c.Reliable
	opts := []lksdk.DataPublishOption{lksdk.WithDataPublishReliable(reliable)}
	if c.Topic != "" {
		opts = append(opts, lksdk.WithDataPublishTopic(c.Topic))
	}
	if len(c.Destinations) > 0 {
		opts = append(opts, lksdk.WithDataPublishDestination(c.Destinations))
	}
	return p.room.LocalParticipant.PublishData(payload, opts...)
}

func (p *peer) registerRPC(c command) error {
	if c.Method == "" {
		return errors.New("method is required")
	}
	mode, repeat, code, message, data := c.Mode, c.Repeat, c.Code, c.Message, c.Data
	switch mode {
	case "", "echo", "repeat", "error", "plain_error":
	default:
		return fmt.Errorf("unknown RPC handler mode %q", mode)
	}
	method := c.Method
	return p.room.RegisterRpcMethod(method, func(inv lksdk.RpcInvocationData) (string, error) {
		p.emit("rpc_invoked", map[string]any{
			"method":              method,
			"caller":              inv.CallerIdentity,
			"payload":             inv.Payload,
			"request_id":          inv.RequestID,
			"response_timeout_ms": inv.ResponseTimeout.Milliseconds(),
		})
		switch mode {
		case "error":
			return "", lksdk.NewRpcError(lksdk.RpcErrorCode(code), message, data)
		case "plain_error": // not an RpcError: the SDK answers 1500 with its built-in message
			return "", errors.New("a plain Go error, not for the caller's eyes")
		case "repeat":
			return strings.Repeat(inv.Payload, repeat), nil
		default:
			return inv.Payload, nil
		}
	})
}

func (p *peer) performRPC(c command) (map[string]any, error) {
	params := lksdk.PerformRpcParams{
		DestinationIdentity: c.Destination,
		Method:              c.Method,
		Payload:             c.Payload,
	}
	if c.TimeoutMs > 0 {
		timeout := time.Duration(c.TimeoutMs) * time.Millisecond
		params.ResponseTimeout = &timeout
	}
	result, err := p.room.LocalParticipant.PerformRpc(params)
	if err != nil {
		var rpcErr *lksdk.RpcError
		if errors.As(err, &rpcErr) {
			fields := map[string]any{"code": rpcErr.Code, "message": rpcErr.Message, "data": rpcErr.Data}
			return fields, err
		}
		return nil, err
	}
	return map[string]any{"payload": *result}, nil
}

// written blocks until the writer has sent everything queued before it, then closes it.
func written(write func(onDone *func()), close func(), timeout time.Duration) error {
	done := make(chan struct{})
	onDone := func() { close(); closeOnce(done) }
	write(&onDone)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return errors.New("stream write timed out")
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (p *peer) sendText(c command) (map[string]any, error) {
	writer := p.room.LocalParticipant.StreamText(lksdk.StreamTextOptions{
		Topic:                 c.Topic,
		DestinationIdentities: c.Destinations,
		TotalSize:             uint64(len(c.Text)),
		Attributes:            c.Attributes,
	})
	err := written(func(onDone *func()) { writer.Write(c.Text, onDone) }, writer.Close, 60*time.Second)
	return map[string]any{"stream_id": writer.Info.Id, "sha256": digest([]byte(c.Text))}, err
}

func (p *peer) sendBytes(c command) (map[string]any, error) {
	payload, err := base64.StdEncoding.DecodeString(c.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload is not base64: %w", err)
	}
	opts := lksdk.StreamBytesOptions{
		Topic:                 c.Topic,
		MimeType:              "application/octet-stream",
		DestinationIdentities: c.Destinations,
		TotalSize:             uint64(len(payload)),
		Attributes:            c.Attributes,
	}
	if c.Name != "" {
		name := c.Name
		opts.FileName = &name
	}
	writer := p.room.LocalParticipant.StreamBytes(opts)
	err = written(func(onDone *func()) { writer.Write(payload, onDone) }, writer.Close, 60*time.Second)
	return map[string]any{"stream_id": writer.Info.Id, "sha256": digest(payload)}, err
}

func (p *peer) registerText(topic string) error {
	return p.room.RegisterTextStreamHandler(topic, func(r *lksdk.TextStreamReader, sender string) {
		text := r.ReadAll()
		p.emit("text", map[string]any{
			"sender":     sender,
			"topic":      r.Info.Topic,
			"stream_id":  r.Info.Id,
			"attributes": r.Info.Attributes,
			"size":       r.Info.Size,
			"text":       text,
			"length":     len(text),
			"sha256":     digest([]byte(text)),
		})
	})
}

func (p *peer) registerBytes(topic string) error {
	return p.room.RegisterByteStreamHandler(topic, func(r *lksdk.ByteStreamReader, sender string) {
		h := sha256.New()
		n, err := io.Copy(h, r)
		fields := map[string]any{
			"sender":     sender,
			"topic":      r.Info.Topic,
			"stream_id":  r.Info.Id,
			"attributes": r.Info.Attributes,
			"size":       r.Info.Size,
			"mime_type":  r.Info.MimeType,
			"length":     n,
			"sha256":     hex.EncodeToString(h.Sum(nil)),
		}
		if r.Info.Name != nil {
			fields["name"] = *r.Info.Name
		}
		if err != nil {
			fields["error"] = err.Error()
		}
		p.emit("bytes", fields)
	})
}

// simulate runs one of the SDK's own failure scenarios. "signal_reconnect" closes the signal
// connection as if it had dropped: the SDK resumes (reported as "reconnecting", then
// "reconnected"), keeping its peer connections and its data channels.
func (p *peer) simulate(scenario string) error {
	switch scenario {
	case "signal_reconnect":
		p.room.Simulate(lksdk.SimulateSignalReconnect)
		return nil
	default:
		return fmt.Errorf("unknown scenario %q", scenario)
	}
}

func (p *peer) handle(c command) (quit bool) {
	var (
		fields map[string]any
		err    error
	)
	switch c.Cmd {
	case "connect":
		err = p.connect(c)
	case "publish_data":
		err = p.publishData(c)
	case "register_rpc":
		err = p.registerRPC(c)
	case "unregister_rpc":
		p.room.UnregisterRpcMethod(c.Method)
	case "perform_rpc":
		// A call can take its whole response timeout: answer it from its own goroutine.
		go func() {
			f, e := p.performRPC(c)
			p.reply(c, f, e)
		}()
		return false
	case "register_text":
		err = p.registerText(c.Topic)
	case "register_bytes":
		err = p.registerBytes(c.Topic)
	case "send_text":
		fields, err = p.sendText(c)
	case "send_bytes":
		fields, err = p.sendBytes(c)
	case "count_data":
		err = p.startCount(c)
	case "flood":
		fields, err = p.flood(c)
	case "rpc_bench":
		// Takes seconds: answered from its own goroutine, like perform_rpc.
		go func() {
			f, e := p.rpcBench(c)
			p.reply(c, f, e)
		}()
		return false
	case "set_metadata":
		p.room.LocalParticipant.SetMetadata(c.Metadata)
	case "set_name":
		p.room.LocalParticipant.SetName(c.Name)
	case "set_attributes":
		p.room.LocalParticipant.SetAttributes(c.Attributes)
	case "participant_info":
		fields = map[string]any{"participants": p.participantInfo()}
	case "publish_file":
		fields, err = p.publishFile(c)
	case "unpublish":
		err = p.unpublish(c)
	case "record":
		err = p.record(c)
	case "stop_record":
		fields, err = p.stopRecord(c)
	case "simulate":
		err = p.simulate(c.Scenario)
	case "participants":
		ids := []string{}
		for _, rp := range p.room.GetRemoteParticipants() {
			ids = append(ids, rp.Identity())
		}
		fields = map[string]any{"participants": ids}
	case "disconnect":
		p.room.Disconnect()
		p.reply(c, nil, nil)
		return true
	default:
		err = fmt.Errorf("unknown command %q", c.Cmd)
	}
	p.reply(c, fields, err)
	return false
}

func main() {
	p := &peer{
		out:        json.NewEncoder(os.Stdout),
		wanted:     map[string]string{},
		recordings: map[string]*recorder{},
	}
	p.out.SetEscapeHTML(false)
	p.room = lksdk.NewRoom(p.callbacks())
	if url, token := os.Getenv("LIVEKIT_URL"), os.Getenv("LIVEKIT_TOKEN"); url != "" && token != "" {
		if err := p.connect(command{Cmd: "connect", URL: url, Token: token}); err != nil {
			p.emit("fatal", map[string]any{"error": err.Error()})
			os.Exit(1)
		}
	}
	p.emit("ready", map[string]any{"sdk_version": lksdk.Version, "protocol": lksdk.PROTOCOL})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			p.emit("bad_command", map[string]any{"error": err.Error()})
			continue
		}
		// Commands run in order, one at a time (perform_rpc excepted), so a test's sequence of
		// sends is the order on the wire.
		if p.handle(c) {
			return
		}
	}
	// stdin closed: the harness is gone or done. Leave the room, but exit within 3 s even if
	// leaving hangs, so a dead harness never leaves this process behind.
	left := make(chan struct{})
	go func() { p.room.Disconnect(); close(left) }()
	select {
	case <-left:
	case <-time.After(3 * time.Second):
	}
}
