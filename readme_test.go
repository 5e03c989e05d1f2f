package caddyauthkit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// noAdapt, on the line before a caddyfile fence, marks a snippet that needs
// modules this build lacks: it is still checked to be `caddy fmt`-clean.
const noAdapt = "<!-- caddyfile: no-adapt -->"

// externalModules may appear in snippets; an adapt error that names one of
// them is not the snippet's fault.
var externalModules = []string{"authorize", "jwtauth", "rate_limit"}

// docBlock is one ```caddyfile block of a Markdown file.
type docBlock struct {
	file    string
	line    int // of the opening fence
	text    string
	noAdapt bool
}

// caddyfileBlocks finds the ```caddyfile blocks of a Markdown file.
func caddyfileBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```caddyfile" {
			continue
		}
		b := docBlock{file: file, line: i + 1, noAdapt: i > 0 && strings.TrimSpace(lines[i-1]) == noAdapt}
		// A fence indented in a list item indents its lines as much.
		indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		b.text = strings.Join(body, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks
}

func docFiles(t *testing.T) []string {
	t.Helper()
	docs, _ := filepath.Glob("docs/*.md")
	return append([]string{"README.md"}, docs...)
}

// TestDocCaddyfilesAdapt adapts every caddyfile block of the README and
// docs/, so a snippet cannot rot. Syntax references (with <placeholders>)
// and blocks marked no-adapt are skipped; blocks for modules this build
// lacks may fail only on those.
func TestDocCaddyfilesAdapt(t *testing.T) {
	t.Setenv("PICA_SECRET_KEY", testSecret)
	t.Setenv("ONE_SECRET_KEY", testSecret)
	count := 0
	for _, file := range docFiles(t) {
		for _, b := range caddyfileBlocks(t, file) {
			count++
			if b.noAdapt || strings.Contains(b.text, "<") {
				continue
			}
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(b.text), nil)
			if err == nil {
				continue
			}
			needsModule := false
			for _, name := range externalModules {
				needsModule = needsModule || strings.Contains(b.text, name) && strings.Contains(err.Error(), name)
			}
			if !needsModule {
				t.Errorf("%s:%d: caddyfile block does not adapt: %v\n%s", b.file, b.line, err, b.text)
			}
		}
	}
	if count < 4 {
		t.Fatalf("found %d caddyfile blocks", count)
	}
}

// TestDocCaddyfilesAreFormatted: every caddyfile block is as `caddy fmt`
// writes it, so a reader who copies one gets no diff from their tools.
func TestDocCaddyfilesAreFormatted(t *testing.T) {
	for _, file := range docFiles(t) {
		for _, b := range caddyfileBlocks(t, file) {
			formatted := caddyfile.Format([]byte(b.text))
			if bytes.Equal(formatted, []byte(b.text)) {
				continue
			}
			got, want := strings.Split(b.text, "\n"), strings.Split(string(formatted), "\n")
			n := 0
			for n < len(got) && n < len(want) && got[n] == want[n] {
				n++
			}
			t.Errorf("%s:%d: caddyfile block is not `caddy fmt` clean; its line %d\n  is %q\n  fmt %q\nformatted, the block reads:\n%s",
				b.file, b.line, n+1, lineAt(got, n), lineAt(want, n), formatted)
		}
	}
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(end)"
}
