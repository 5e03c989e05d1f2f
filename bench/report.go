package main

import (
	"fmt"
	"slices"
	"time"
)

// row is one comparison of the report: authkit against a baseline, both
// pooled over the rounds, and the focus ratio of each round.
type row struct {
	name, baseline string
	ours, base     result
	focus          string
	ratios         []float64
}

// ratioOf is authkit's focus measure over the baseline's, in one round:
// p50 latency, CPU per request, or requests per second.
func ratioOf(focus string, ours, base result) float64 {
	switch focus {
	case "p50":
		return float64(ours.percentile(.5)) / float64(base.percentile(.5))
	case "cpu":
		return float64(ours.cpuPerRequest()) / float64(base.cpuPerRequest())
	}
	return ours.rps() / base.rps()
}

// spread is the median of the rounds' ratios, with their min and max.
func (r row) spread() string {
	sorted := slices.Clone(r.ratios)
	slices.Sort(sorted)
	n := len(sorted)
	median := sorted[n/2]
	if n%2 == 0 {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return fmt.Sprintf("%.2fx (%.2f–%.2f over %d rounds)", median, sorted[0], sorted[n-1], n)
}

func printReport(rows []row, procs map[string]*process) {
	fmt.Printf("\nsandbox latency %s per Pica call, %d rounds A/B interleaved, %s per throughput run\n\n", *latency, *rounds, *duration)
	fmt.Println("| comparison | baseline | authkit p50 | baseline p50 | authkit p99 | baseline p99 | authkit req/s | baseline req/s | authkit CPU/req | baseline CPU/req | errors (authkit, baseline) | ratio |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		ratio := map[string]string{"p50": "p50 ", "cpu": "CPU/token ", "rps": "req/s "}[r.focus] + r.spread()
		fmt.Printf("| %s | %s | %.1fms | %.1fms | %.1fms | %.1fms | %.0f | %.0f | %.0fµs | %.0fµs | %d, %d of %d | %s |\n",
			r.name, r.baseline, ms(r.ours.percentile(.5)), ms(r.base.percentile(.5)), ms(r.ours.percentile(.99)), ms(r.base.percentile(.99)),
			r.ours.rps(), r.base.rps(), us(r.ours.cpuPerRequest()), us(r.base.cpuPerRequest()),
			r.ours.errors, r.base.errors, len(r.ours.latencies)+len(r.base.latencies), ratio)
	}
	fmt.Println("\n| process | peak RSS |")
	fmt.Println("| --- | --- |")
	for _, name := range []string{"authkit", "bare caddy", "node sdk", "sandbox"} {
		fmt.Printf("| %s | %.1f MiB |\n", name, procs[name].peakRSS())
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
