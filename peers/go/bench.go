// Benchmark commands (benchmarks/bench_native.py): flood, count_data and rpc_bench. They
// leave every other command as it was; count_data only changes how user packets are
// reported while a count is under way.
package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
)

// benchLimit bounds every benchmark command that has no limit_ms of its own.
const benchLimit = 60 * time.Second

func limitOf(c command) time.Duration {
	if c.LimitMs > 0 {
		return time.Duration(c.LimitMs) * time.Millisecond
	}
	return benchLimit
}

// startCount begins counting user packets (reported as one "data_counted" event once
// `expect` have arrived); it refuses while a count is under way.
func (p *peer) startCount(c command) error {
	if c.Expect <= 0 {
		return errors.New("expect must be positive")
	}
	p.countMu.Lock()
	defer p.countMu.Unlock()
	if p.counting {
		return errors.New("a count is already under way")
	}
	p.counting = true
	p.counter = dataCounter{expect: c.Expect}
	return nil
}

// countData counts one user packet if a count is under way (true), else returns false.
func (p *peer) countData(n int) bool {
	now := time.Now().UnixNano()
	p.countMu.Lock()
	if !p.counting {
		p.countMu.Unlock()
		return false
	}
	k := &p.counter
	if k.count == 0 {
		k.firstNs = now
	}
	k.count++
	k.bytes += int64(n)
	k.lastNs = now
	done := k.count >= k.expect
	snapshot := *k
	if done {
		p.counting = false
	}
	p.countMu.Unlock()
	if done {
		p.emit("data_counted", map[string]any{
			"count": snapshot.count, "bytes": snapshot.bytes,
			"first_ns": snapshot.firstNs, "last_ns": snapshot.lastNs,
		})
	}
	return true
}

// flood publishes `count` packets of `size` zero bytes back to back (PublishData queues
// into pion's SCTP send buffer and does not wait), bounded by limit_ms.
func (p *peer) flood(c command) (map[string]any, error) {
	if c.Size <= 0 || c.Count <= 0 {
		return nil, errors.New("size and count must be positive")
	}
	payload := make([]byte, c.Size)
	reliable := c.Reliable == nil || *c.Reliable
	opts := []lksdk.DataPublishOption{lksdk.WithDataPublishReliable(reliable)}
	if c.Topic != "" {
		opts = append(opts, lksdk.WithDataPublishTopic(c.Topic))
	}
	if len(c.Destinations) > 0 {
		opts = append(opts, lksdk.WithDataPublishDestination(c.Destinations))
	}
	start := time.Now()
	deadline := start.Add(limitOf(c))
	sent := 0
	for sent < c.Count && time.Now().Before(deadline) {
		if err := p.room.LocalParticipant.PublishData(payload, opts...); err != nil {
			return map[string]any{"sent": sent}, err
		}
		sent++
	}
	return map[string]any{
		"sent": sent, "start_ns": start.UnixNano(), "end_ns": time.Now().UnixNano(),
	}, nil
}

// rpcBench makes `calls` RPCs to `destination` from `concurrency` callers, each waiting
// gap_ms between its calls, bounded by limit_ms; it reports each successful call's
// latency, the wall time and the errors by code.
func (p *peer) rpcBench(c command) (map[string]any, error) {
	if c.Calls <= 0 || c.Concurrency <= 0 {
		return nil, errors.New("calls and concurrency must be positive")
	}
	var (
		mu        sync.Mutex
		left      = c.Calls
		latencies = []float64{}
		failures  = map[string]int{}
		wg        sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(limitOf(c))
	for w := 0; w < c.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				t := time.Now()
				params := lksdk.PerformRpcParams{
					DestinationIdentity: c.Destination, Method: c.Method, Payload: c.Payload,
				}
				reply, err := p.room.LocalParticipant.PerformRpc(params)
				elapsed := time.Since(t)
				mu.Lock()
				var rpcErr *lksdk.RpcError
				switch {
				case errors.As(err, &rpcErr):
					failures[fmt.Sprint(rpcErr.Code)]++
				case err != nil:
					failures[strings.SplitN(err.Error(), ":", 2)[0]]++
				case *reply != c.Payload:
					failures["wrong payload"]++
				default:
					latencies = append(latencies, float64(elapsed.Microseconds())/1000)
				}
				mu.Unlock()
				time.Sleep(time.Duration(c.GapMs) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return map[string]any{
		"latencies_ms": latencies, "wall_s": time.Since(start).Seconds(), "errors": failures,
	}, nil
}
