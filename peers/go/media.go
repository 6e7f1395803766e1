// Media commands: publish an Opus (Ogg) or VP8 (IVF) file as a track, looping it, and record a
// subscribed track's RTP into an Ogg or IVF file. pion cannot encode, so the harness encodes
// the files (PyAV) and decodes the recordings; this program only moves encoded frames.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/oggreader"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/ivfwriter"
	"github.com/pion/webrtc/v4/pkg/media/oggwriter"
)

// loopingFile is a SampleProvider that plays an Ogg Opus or IVF file and starts it over at
// its end, so a test can read the track for as long as it likes. An IVF file must hold one
// frame per tick of its timebase (as the harness writes it): each frame lasts one tick.
type loopingFile struct {
	lksdk.BaseSampleProvider
	path  string
	video bool
	file  *os.File
	ogg   *oggreader.OggReader
	ivf   *ivfreader.IVFReader
	tick  time.Duration // IVF: one frame's duration
}

func newLoopingFile(path string) (*loopingFile, string, error) {
	l := &loopingFile{path: path}
	mime := webrtc.MimeTypeOpus
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ogg":
	case ".ivf":
		l.video, mime = true, webrtc.MimeTypeVP8
	default:
		return nil, "", fmt.Errorf("%s: not .ogg (Opus) or .ivf (VP8)", path)
	}
	return l, mime, l.rewind()
}

// rewind (re)opens the file and reads its headers.
func (l *loopingFile) rewind() error {
	if l.file != nil {
		_ = l.file.Close()
	}
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	l.file = f
	if l.video {
		reader, header, err := ivfreader.NewWith(f)
		if err != nil {
			return err
		}
		if string(header.FourCC[:3]) != "VP8" {
			return fmt.Errorf("%s: not VP8 (%q)", l.path, header.FourCC)
		}
		l.ivf = reader
		l.tick = time.Second * time.Duration(header.TimebaseNumerator) /
			time.Duration(header.TimebaseDenominator)
		return nil
	}
	l.ogg, _, err = oggreader.NewOggReader(f)
	return err
}

func (l *loopingFile) next() (media.Sample, error) {
	if l.video {
		frame, _, err := l.ivf.ParseNextFrame()
		return media.Sample{Data: frame, Duration: l.tick}, err
	}
	packet, err := l.ogg.ReadPacket()
	if err != nil {
		return media.Sample{}, err
	}
	duration, err := oggreader.ParsePacketDuration(packet)
	return media.Sample{Data: packet, Duration: duration}, err
}

func (l *loopingFile) NextSample(context.Context) (media.Sample, error) {
	sample, err := l.next()
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		if err = l.rewind(); err == nil {
			sample, err = l.next()
		}
	}
	return sample, err
}

func (l *loopingFile) Close() error {
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

// publishFile publishes `path` (.ogg: a microphone; .ivf: a camera) under `name`, looping.
func (p *peer) publishFile(c command) (map[string]any, error) {
	provider, mime, err := newLoopingFile(c.Path)
	if err != nil {
		return nil, err
	}
	clock := uint32(48000)
	if provider.video {
		clock = 90000
	}
	track, err := lksdk.NewLocalTrack(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: clock})
	if err != nil {
		_ = provider.Close()
		return nil, err
	}
	track.OnBind(func() {
		if err := track.StartWrite(provider, nil); err != nil {
			p.emit("media_error", map[string]any{"error": err.Error()})
		}
	})
	opts := &lksdk.TrackPublicationOptions{Name: c.Name, Source: livekit.TrackSource_MICROPHONE}
	if provider.video {
		opts.Source, opts.VideoWidth, opts.VideoHeight = livekit.TrackSource_CAMERA, c.Width, c.Height
	}
	pub, err := p.room.LocalParticipant.PublishTrack(track, opts)
	if err != nil {
		_ = provider.Close()
		return nil, err
	}
	return map[string]any{"sid": pub.SID(), "mime": mime}, nil
}

func (p *peer) unpublish(c command) error {
	return p.room.LocalParticipant.UnpublishTrack(c.Sid)
}

// recorder writes one subscribed track's RTP into a file: Opus into Ogg, VP8 into IVF (from
// its first keyframe: pion's IVF writer drops what comes before).
type recorder struct {
	mu      sync.Mutex
	path    string
	writer  media.Writer
	packets int
	closed  bool
}

func (r *recorder) write(track *webrtc.TrackRemote) {
	for {
		packet, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return
		}
		if err := r.writer.WriteRTP(packet); err == nil {
			r.packets++
		}
		r.mu.Unlock()
	}
}

func (r *recorder) size() int64 {
	if info, err := os.Stat(r.path); err == nil {
		return info.Size()
	}
	return 0
}

func (r *recorder) close() (map[string]any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("already stopped")
	}
	r.closed = true
	err := r.writer.Close()
	return map[string]any{"packets": r.packets, "path": r.path}, err
}

// record subscribes to track `sid` and, once subscribed, writes it to `path` (.ogg or .ivf);
// stop_record closes the file. A video recording asks the publisher for a keyframe (PLI)
// every half second until the file holds one.
func (p *peer) record(c command) error {
	pub := p.remotePublication(c.Sid)
	if pub == nil {
		return fmt.Errorf("no remote track %q", c.Sid)
	}
	p.mediaMu.Lock()
	if _, busy := p.recordings[c.Sid]; busy {
		p.mediaMu.Unlock()
		return fmt.Errorf("track %q is already being recorded", c.Sid)
	}
	p.wanted[c.Sid] = c.Path
	p.mediaMu.Unlock()
	return pub.SetSubscribed(true)
}

func (p *peer) remotePublication(sid string) *lksdk.RemoteTrackPublication {
	for _, rp := range p.room.GetRemoteParticipants() {
		for _, pub := range rp.TrackPublications() {
			if remote, ok := pub.(*lksdk.RemoteTrackPublication); ok && pub.SID() == sid {
				return remote
			}
		}
	}
	return nil
}

// onSubscribed starts the recording asked for (if any) of a newly subscribed track.
func (p *peer) onSubscribed(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	mime := track.Codec().MimeType
	fields := map[string]any{"sid": pub.SID(), "identity": rp.Identity(), "name": pub.Name(), "mime": mime}
	p.mediaMu.Lock()
	path, wanted := p.wanted[pub.SID()]
	delete(p.wanted, pub.SID())
	p.mediaMu.Unlock()
	if !wanted {
		p.emit("track_subscribed", fields)
		return
	}
	rec, err := newRecorder(path, mime)
	if err != nil {
		fields["error"] = err.Error()
		p.emit("track_subscribed", fields)
		return
	}
	p.mediaMu.Lock()
	p.recordings[pub.SID()] = rec
	p.mediaMu.Unlock()
	p.emit("track_subscribed", fields)
	go rec.write(track)
	if track.Kind() == webrtc.RTPCodecTypeVideo {
		go func() {
			for i := 0; i < 20 && rec.size() <= 32; i++ { // 32: the IVF file header alone
				rp.WritePLI(track.SSRC())
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
}

func newRecorder(path, mime string) (*recorder, error) {
	r := &recorder{path: path}
	var err error
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeOpus):
		r.writer, err = oggwriter.New(path, 48000, 2)
	case strings.EqualFold(mime, webrtc.MimeTypeVP8):
		r.writer, err = ivfwriter.New(path, ivfwriter.WithCodec(webrtc.MimeTypeVP8))
	default:
		err = fmt.Errorf("cannot record %s", mime)
	}
	return r, err
}

// stopRecord closes track `sid`'s file and unsubscribes; the result says how many RTP
// packets went into it.
func (p *peer) stopRecord(c command) (map[string]any, error) {
	p.mediaMu.Lock()
	rec, ok := p.recordings[c.Sid]
	delete(p.recordings, c.Sid)
	p.mediaMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("track %q is not being recorded", c.Sid)
	}
	fields, err := rec.close()
	if pub := p.remotePublication(c.Sid); pub != nil {
		_ = pub.SetSubscribed(false)
	}
	return fields, err
}
