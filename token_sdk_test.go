//go:build external

package caddyauthkit

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// requestIDField differs between any two tokens: Pica numbers every request.
var requestIDField = regexp.MustCompile(`"requestId":\d+`)

// TestTokenMatchesTheOfficialNodeSDK runs @picahq/authkit-token against the
// sandbox and requires the token route to return the same bytes, for one
// page and for several.
func TestTokenMatchesTheOfficialNodeSDK(t *testing.T) {
	if _, err := os.Stat("testdata/node/node_modules/@picahq/authkit-token"); err != nil {
		t.Fatal("the Node SDK is not installed: run ./scripts/test (or npm ci --prefix testdata/node)")
	}
	for _, tc := range []struct {
		name       string
		connectors int
		whiteLabel bool
	}{{"one page", 30, false}, {"three pages", 250, true}, {"empty account", -1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: tc.connectors, WhiteLabel: tc.whiteLabel})
			g := startGateway(t, pica, "")

			cmd := exec.Command("node", "testdata/node/sdk-token.cjs", g.picaURL, "alice", "user")
			cmd.Stdin = strings.NewReader(testSecret)
			sdk, err := cmd.Output()
			if err != nil {
				t.Fatalf("the SDK failed: %v", err)
			}
			res := g.as("alice", "POST", "/authkit/token", nil)
			expect(t, res, 200, "")

			if !requestIDField.Match(sdk) || !requestIDField.Match(res.body) {
				t.Fatalf("requestId missing or not a number:\nsdk  %.200s\nours %.200s", sdk, res.body)
			}
			want := requestIDField.ReplaceAllString(string(sdk), `"requestId":0`)
			got := requestIDField.ReplaceAllString(string(res.body), `"requestId":0`)
			if got != want {
				t.Fatalf("token differs from the SDK's:\nsdk  %.400s\nours %.400s", want, got)
			}
		})
	}
}
