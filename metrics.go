package caddyauthkit

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the module's Prometheus collectors. Labels are routes, Pica
// endpoints, statuses and reasons: never an identity or a key.
type metrics struct {
	requests    *prometheus.CounterVec
	picaLatency *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	cache       *prometheus.CounterVec
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	evictions   prometheus.Counter
	denials     *prometheus.CounterVec

	// byRouteCode caches requests' counters: the hot path skips formatting
	// the code and hashing the labels.
	byRouteCode sync.Map
}

type routeCode struct {
	route string
	code  int
}

// newMetrics registers the collectors in registry (Caddy makes a new one on
// every config load), reusing any that another authkit handler registered.
func newMetrics(registry *prometheus.Registry) (*metrics, error) {
	const ns, sub = "caddy", "authkit"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests answered by the authkit handler, by route and status code.",
		}, []string{"route", "code"}),
		picaLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "pica_request_duration_seconds",
			Help:    "Latency of the gateway's own calls to Pica, by endpoint and outcome (status code or error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pica_retries_total",
			Help: "Calls to Pica that were retried, by endpoint.",
		}, []string{"endpoint"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "ownership_cache_lookups_total",
			Help: "Ownership cache lookups, by result (hit or miss).",
		}, []string{"result"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "ownership_cache_evictions_total",
			Help: "Ownership answers evicted because the cache was full.",
		}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "denials_total",
			Help: "Requests refused for the caller's own reasons (401 and 403), by reason.",
		}, []string{"reason"}),
	}
	if registry != nil {
		if err := m.register(registry); err != nil {
			return nil, err
		}
	}
	m.cacheHits, m.cacheMisses = m.cache.WithLabelValues("hit"), m.cache.WithLabelValues("miss")
	return m, nil
}

// register puts the collectors in registry, reusing any already there.
func (m *metrics) register(registry *prometheus.Registry) error {
	var err error
	if m.requests, err = register(registry, m.requests); err != nil {
		return err
	}
	if m.picaLatency, err = register(registry, m.picaLatency); err != nil {
		return err
	}
	if m.retries, err = register(registry, m.retries); err != nil {
		return err
	}
	if m.cache, err = register(registry, m.cache); err != nil {
		return err
	}
	if m.evictions, err = register(registry, m.evictions); err != nil {
		return err
	}
	m.denials, err = register(registry, m.denials)
	return err
}

func register[C prometheus.Collector](registry *prometheus.Registry, c C) (C, error) {
	err := registry.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) request(route string, status int) {
	key := routeCode{route, status}
	c, ok := m.byRouteCode.Load(key)
	if !ok {
		c, _ = m.byRouteCode.LoadOrStore(key, m.requests.WithLabelValues(route, strconv.Itoa(status)))
	}
	c.(prometheus.Counter).Inc()
}

func (m *metrics) picaCall(endpoint, outcome string, d time.Duration) {
	m.picaLatency.WithLabelValues(endpoint, outcome).Observe(d.Seconds())
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

func (m *metrics) denied(reason string) { m.denials.WithLabelValues(reason).Inc() }
