package caddyauthkit

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors. Labels are servers,
// routes, methods, vendor endpoints, statuses and reasons: never an identity
// or a key.
type metrics struct {
	requests      *prometheus.CounterVec
	vendorLatency *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	cache         *prometheus.CounterVec
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	evictions     prometheus.Counter
	denials       *prometheus.CounterVec
	errors        *prometheus.CounterVec
	inFlight      prometheus.Gauge
	overloaded    prometheus.Counter
	eventsDropped prometheus.Counter
	reconnects    prometheus.Counter

	// counters and observers cache the requests' counters and the vendor
	// latency's observers: the hot path skips formatting the code and
	// hashing the labels.
	counters, observers sync.Map
}

type requestLabels struct {
	server, route, method string
	code                  int
}

// denialReasons are initialised at 0, so a rate over them is defined
// before the first denial.
var denialReasons = []string{"identity_missing", "ticket_required", "ticket_invalid", "connection_not_owned", "platform_not_allowed", "action_not_allowed"}

// newMetrics registers the collectors in registry (Caddy makes a new one on
// every config load), reusing any that another authkit handler registered.
func newMetrics(registry *prometheus.Registry) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "caddy", Subsystem: "authkit", Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	}
	latency := opts("vendor_request_duration_seconds",
		"Latency of the gateway's calls to the vendor, by endpoint and outcome (status code, error, or relayed for a third party's passthrough answer).")
	m := &metrics{
		requests: counters("requests_total",
			"Requests answered by the authkit handler, by server, route, method (OPTIONS for preflight; OTHER for a made-up one) and status code.",
			"server", "route", "method", "code"),
		vendorLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: latency.Namespace, Subsystem: latency.Subsystem, Name: latency.Name, Help: latency.Help,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "outcome"}),
		retries:   counters("vendor_retries_total", "Calls to the vendor that were retried, by endpoint.", "endpoint"),
		cache:     counters("ownership_cache_lookups_total", "Ownership cache lookups, by result (hit or miss).", "result"),
		evictions: counter("ownership_cache_evictions_total", "Ownership answers evicted because the cache was full."),
		denials:   counters("denials_total", "Requests refused for the caller's own reasons (401 and 403), by reason.", "reason"),
		errors: counters("errors_total",
			"Error answers in the gateway's envelope, by route and code (vendor_rejected_secret, vendor_unavailable, overloaded, ...).", "route", "code"),
		inFlight:      prometheus.NewGauge(prometheus.GaugeOpts(opts("vendor_calls_in_flight", "Calls to the vendor in flight, passthrough included."))),
		overloaded:    counter("overloaded_total", "Requests answered 503 because max_concurrent calls to the vendor were in flight."),
		eventsDropped: counter("events_dropped_total", "Events dropped because their handlers were too slow to keep up."),
		reconnects: counter("reconnect_signals_total",
			"Passthrough answers where the third party refused a user's grant (401), signalled to the browser with AuthKit-Reconnect."),
	}
	if registry != nil {
		if err := m.register(registry); err != nil {
			return nil, err
		}
	}
	m.cacheHits, m.cacheMisses = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss")
	for _, reason := range denialReasons {
		m.denials.WithLabelValues(reason)
	}
	return m, nil
}

// register puts the collectors in registry, reusing any already there.
func (m *metrics) register(registry *prometheus.Registry) error {
	return errors.Join(
		registerInto(registry, &m.requests),
		registerInto(registry, &m.vendorLatency),
		registerInto(registry, &m.retries),
		registerInto(registry, &m.cache),
		registerInto(registry, &m.evictions),
		registerInto(registry, &m.denials),
		registerInto(registry, &m.errors),
		registerInto(registry, &m.inFlight),
		registerInto(registry, &m.overloaded),
		registerInto(registry, &m.eventsDropped),
		registerInto(registry, &m.reconnects),
	)
}

func registerInto[C prometheus.Collector](registry *prometheus.Registry, c *C) error {
	err := registry.Register(*c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			*c = existing
			return nil
		}
	}
	return err
}

func (m *metrics) request(r *http.Request, route string, status int) {
	key := requestLabels{serverName(r), route, methodLabel(r.Method), status}
	c, ok := m.counters.Load(key)
	if !ok {
		c, _ = m.counters.LoadOrStore(key, m.requests.WithLabelValues(key.server, route, key.method, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
}

// methodLabel is the method as a label value: one of the standard methods,
// or OTHER, as Caddy's own metrics have it. A client's made-up methods must
// not each grow a new series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "OTHER"
}

func (m *metrics) vendorCall(endpoint, outcome string, d time.Duration) {
	key := [2]string{endpoint, outcome}
	o, ok := m.observers.Load(key)
	if !ok {
		o, _ = m.observers.LoadOrStore(key, m.vendorLatency.WithLabelValues(endpoint, outcome))
	}
	o.(prometheus.Observer).Observe(d.Seconds())
}

func (m *metrics) retry(endpoint string) { m.retries.WithLabelValues(endpoint).Inc() }

func (m *metrics) cacheLookup(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

func (m *metrics) cacheEviction() { m.evictions.Inc() }

// inFlightChanged follows the limiter: +1 and -1 as calls start and end, 0
// for a call refused as overloaded.
func (m *metrics) inFlightChanged(delta int) {
	if delta == 0 {
		m.overloaded.Inc()
		return
	}
	m.inFlight.Add(float64(delta))
}

// serverName is the name of the Caddy server that took r, for metrics.
func serverName(r *http.Request) string {
	if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv.Name() != "" {
		return srv.Name()
	}
	return "unknown"
}

func (m *metrics) denied(reason string) { m.denials.WithLabelValues(reason).Inc() }

func (m *metrics) failed(route, code string) { m.errors.WithLabelValues(route, code).Inc() }
