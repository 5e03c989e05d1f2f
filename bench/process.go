package main

// The processes a run starts (Caddy, the sandbox, the Node SDK server),
// their CPU time and memory, and their end.

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type process struct {
	name string
	cmd  *exec.Cmd
}

func start(dir, bin, name, caddyfile string, env ...string) *process {
	file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".Caddyfile")
	check(os.WriteFile(file, []byte(caddyfile), 0o600))
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(append(os.Environ(), "PICA_SECRET_KEY="+secret), env...)
	check(cmd.Start())
	p := &process{name: name, cmd: cmd}
	children.Lock()
	children.list = append(children.list, p)
	children.Unlock()
	return p
}

// children are the processes started, stopped by stopChildren.
var children struct {
	sync.Mutex
	list []*process
}

// tempDir is removed with the children when the run stops early.
var tempDir string

// stopChildren kills every process started and waits for it to exit.
func stopChildren() {
	children.Lock()
	defer children.Unlock()
	for _, p := range children.list {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	children.list = nil
}

// stopOnSignal stops the children when the run is interrupted.
func stopOnSignal() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		stopChildren()
		os.RemoveAll(tempDir)
		os.Exit(1)
	}()
}

// cpu is the process's user+system CPU time so far.
func (p *process) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	check(err)
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// peakRSS is the process's high-water resident set, in MiB.
func (p *process) peakRSS() float64 { return p.statusMiB("VmHWM:") }

// rss is the process's resident set now, in MiB.
func (p *process) rss() float64 { return p.statusMiB("VmRSS:") }

// statusMiB reads a size field of the process's /proc status, in MiB.
func (p *process) statusMiB(field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
