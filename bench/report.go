package main

import (
	"fmt"
	"time"
)

// row is one comparison of the report: authkit against a baseline.
type row struct {
	name, baseline string
	ours, base     result
	focus          string
}

func printReport(rows []row, procs map[string]*process) {
	fmt.Printf("\nsandbox latency %s per Pica call, %d rounds A/B interleaved, %s per throughput run\n\n", *latency, *rounds, *duration)
	fmt.Println("| comparison | baseline | authkit p50 | baseline p50 | authkit p99 | baseline p99 | authkit req/s | baseline req/s | authkit CPU/req | baseline CPU/req | errors (authkit, baseline) | ratio |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		var ratio string
		switch r.focus {
		case "p50":
			ratio = fmt.Sprintf("p50 %.2fx", float64(r.ours.percentile(.5))/float64(r.base.percentile(.5)))
		case "cpu":
			ratio = fmt.Sprintf("CPU/token %.2fx, req/s %.2fx", float64(r.ours.cpuPerRequest())/float64(r.base.cpuPerRequest()), r.ours.rps()/r.base.rps())
		case "rps":
			ratio = fmt.Sprintf("req/s %.2fx, p99 %+.2fms", r.ours.rps()/r.base.rps(), ms(r.ours.percentile(.99)-r.base.percentile(.99)))
		}
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
