package caddyauthkit

import (
	"fmt"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/prometheus/client_golang/prometheus"
)

// Names of the Caddy events the module emits; their data holds the same
// fields as the audit line.
const (
	eventPassthrough       = "authkit.passthrough"
	eventConnectionDeleted = "authkit.connection_deleted"
	eventDenied            = "authkit.denied"
	eventTicketIssued      = "authkit.ticket_issued"
	eventReconnect         = "authkit.reconnect_needed"
)

// eventQueueSize bounds the events waiting for their handlers; beyond it
// events are dropped and counted, so a slow handler never slows a request.
const eventQueueSize = 1024

// eventSink hands events to Caddy's events app from one goroutine of its
// own: the app runs handlers synchronously, and a request must not wait
// for them, nor fail with them.
type eventSink struct {
	app     *caddyevents.App
	ctx     caddy.Context // the module's, so events name it as their origin
	queue   chan pendingEvent
	stop    chan struct{}
	once    sync.Once
	dropped prometheus.Counter
}

type pendingEvent struct {
	name string
	data map[string]any
}

// newEventSink uses the events app (Caddy makes an empty one when none is
// configured, as reverse_proxy already asks for it) and starts the sender.
func newEventSink(ctx caddy.Context, dropped prometheus.Counter) (*eventSink, error) {
	appIface, err := ctx.App("events")
	if err != nil {
		return nil, fmt.Errorf("authkit: loading events app: %v", err)
	}
	s := &eventSink{
		app: appIface.(*caddyevents.App), ctx: ctx, dropped: dropped,
		queue: make(chan pendingEvent, eventQueueSize), stop: make(chan struct{}),
	}
	go s.run()
	return s, nil
}

func (s *eventSink) run() {
	for {
		select {
		case <-s.stop:
			return
		case e := <-s.queue:
			s.app.Emit(s.ctx, e.name, e.data)
		}
	}
}

// wanted reports whether anything would observe one of names, so that
// unobserved events cost nothing.
func (s *eventSink) wanted(names []string) bool {
	if s == nil {
		return false
	}
	for _, name := range names {
		if s.app.ShouldEmit(name) {
			return true
		}
	}
	return false
}

// emit queues the events named, or drops and counts them when the queue is
// full. Each event gets its own copy of the data, as handlers may add to it.
func (s *eventSink) emit(names []string, fact auditFact) {
	if s == nil {
		return
	}
	for _, name := range names {
		if !s.app.ShouldEmit(name) {
			continue
		}
		select {
		case s.queue <- pendingEvent{name: name, data: fact.data()}:
		default:
			s.dropped.Inc()
		}
	}
}

// close stops the sender; events still queued are dropped with the config.
func (s *eventSink) close() {
	if s != nil {
		s.once.Do(func() { close(s.stop) })
	}
}
