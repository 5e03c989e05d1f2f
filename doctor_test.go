package caddyauthkit

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/caddyauthkit/caddyauthkit/sandbox"
)

// doctorOn writes caddyfile to a temporary file, runs the doctor on it,
// checks that failures handlers failed, and returns what it printed.
func doctorOn(t *testing.T, caddyfile string, failures int) string {
	t.Helper()
	var out bytes.Buffer
	if failed := runDoctor(&out, writeCaddyfile(t, caddyfile), "caddyfile"); failed != failures {
		t.Fatalf("%d failed, want %d:\n%s", failed, failures, out.String())
	}
	return out.String()
}

// writeCaddyfile writes caddyfile to a temporary file and returns its path.
func writeCaddyfile(t *testing.T, caddyfile string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestDoctor(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: testSecret, Connectors: 7, WhiteLabel: true})
	api := httptest.NewServer(pica)
	defer api.Close()

	t.Run("good config", func(t *testing.T) {
		out := doctorOn(t, fmt.Sprintf(`http://localhost:9080 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
		identity {http.request.header.X-Auth-User}
	}
}
http://localhost:9081 {
	route {
		authkit {
			secret {env.AUTHKIT_TEST_SECRET}
			api %[1]s
			prefix /one
			ticket_ttl 2m
		}
	}
}`, api.URL), 0)
		for _, want := range []string{
			"authkit #1 (server srv0",
			"authkit #2 (server srv1",
			"api:          " + api.URL,
			"prefix:       /one",
			"secret ok:    accepted by " + api.URL,
			"connectors:   7 enabled in AuthKit",
			"white label:  true",
			"ticket ttl:   2m0s",
			"cors origins: https://authkit.picaos.com",
			"request header X-Auth-User from any client",
			"WARNING: the identity comes from the request header X-Auth-User",
			"summary: 2 authkit handler(s), 2 ok, 0 failed",
		} {
			mustContain(t, out, want, "doctor output")
		}
		if strings.Count(out, "WARNING: the identity") != 1 {
			t.Fatalf("the header warning must be on the header handler only:\n%s", out)
		}
		if strings.Contains(out, testSecret) || strings.Contains(out, testSecret[8:]) {
			t.Fatal("the doctor printed the secret")
		}
		if pica.Count("connectors") != 2 {
			t.Fatalf("%d connectors calls, want one per handler", pica.Count("connectors"))
		}
	})

	t.Run("wrong secret", func(t *testing.T) {
		t.Setenv("DOCTOR_WRONG_SECRET", "sk_test_1_notTheRightOne")
		out := doctorOn(t, fmt.Sprintf(`:9080 {
	authkit {
		secret {env.DOCTOR_WRONG_SECRET}
		api %s
	}
}`, api.URL), 1)
		mustContain(t, out, "FAIL: secret rejected by "+api.URL, "doctor output")
		mustContain(t, out, "summary: 1 authkit handler(s), 0 ok, 1 failed", "doctor output")
		if strings.Contains(out, "notTheRightOne") {
			t.Fatal("the doctor printed the secret")
		}
	})

	t.Run("unreachable api", func(t *testing.T) {
		addr := closedPort(t)
		out := doctorOn(t, fmt.Sprintf(`:9080 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api http://%s
	}
}`, addr), 1)
		mustContain(t, out, "FAIL: cannot reach http://"+addr+": connection refused", "doctor output")
	})

	t.Run("a secret written in the config", func(t *testing.T) {
		const literal = "sk_test_1_writtenRightIntoTheConfig"
		out := doctorOn(t, fmt.Sprintf(":9080 {\n\tauthkit {\n\t\tsecret %s\n\t\tapi %s\n\t}\n}\n", literal, api.URL), 1) // the sandbox does not know this key
		mustContain(t, out, fmt.Sprintf("secret:       written in the config (sk_test_… %d characters)", len(literal)), "doctor output")
		for _, piece := range []string{literal, literal[8:], "writtenRight"} {
			if strings.Contains(out, piece) {
				t.Fatalf("the doctor printed the secret (%q):\n%s", piece, out)
			}
		}
	})

	t.Run("layout mistakes", func(t *testing.T) {
		out := doctorOn(t, fmt.Sprintf(`app.example.com {
	handle_path /authkit/* {
		authkit {
			secret {env.AUTHKIT_TEST_SECRET}
			api %s
		}
	}
}
other.example.com {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[1]s
		ticket_only off
	}
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[1]s
		prefix /authkit/two
	}
}`, api.URL), 2)
		mustContain(t, out, "FAIL: authkit (site app.example.com, prefix /authkit) is inside handle_path", "doctor output")
		mustContain(t, out, "FAIL: authkit (site other.example.com, prefix /authkit/two) overlaps another authkit with prefix /authkit", "doctor output")
		mustContain(t, out, "WARNING: ticket_only is off", "doctor output")
	})

	t.Run("no config file", func(t *testing.T) {
		var out bytes.Buffer
		missing := filepath.Join(t.TempDir(), "Caddyfile")
		if failed := runDoctor(&out, missing, ""); failed != 1 || out.String() != "no config: the file "+missing+" does not exist\n" {
			t.Fatalf("%d failed: %q", failed, out.String())
		}
		t.Chdir(t.TempDir())
		out.Reset()
		if failed := runDoctor(&out, "", ""); failed != 1 || !strings.Contains(out.String(), "there is no ./Caddyfile here") {
			t.Fatalf("%d failed: %q", failed, out.String())
		}
	})

	t.Run("missing secret file and one good handler", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "no-such-secret")
		out := doctorOn(t, fmt.Sprintf(`:9080 {
	authkit {
		secret {file.%s}
		api %s
		cors_origins *
	}
}
:9081 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %[2]s
	}
}`, missing, api.URL), 1)
		mustContain(t, out, "file "+missing+" does not exist", "doctor output")
		mustContain(t, out, "WARNING: cors_origins *", "doctor output")
		mustContain(t, out, "summary: 2 authkit handler(s), 1 ok, 1 failed", "doctor output")
	})

	t.Run("one", func(t *testing.T) {
		one := sandbox.New(sandbox.Options{Secret: testSecret, Provider: sandbox.ProviderOne, Connectors: 4})
		oneAPI := httptest.NewServer(one)
		defer oneAPI.Close()
		out := doctorOn(t, fmt.Sprintf(`:9080 {
	authkit {
		provider one
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
	}
}`, oneAPI.URL), 0)
		mustContain(t, out, "connectors:   4 enabled in AuthKit", "doctor output")
		mustContain(t, out, "cors origins: https://auth.withone.ai", "doctor output")
		for _, r := range one.Requests() {
			if r.Dialect != sandbox.ProviderOne || r.Endpoint == sandbox.EndpointFlags {
				t.Fatalf("the doctor spoke to One as to Pica: %s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("what the vendor answers, explained", func(t *testing.T) {
		failing := sandbox.New(sandbox.Options{Secret: testSecret})
		failing.SetFault(sandbox.EndpointConnectors, sandbox.Fault{Status: 500})
		failingAPI := httptest.NewServer(failing)
		defer failingAPI.Close()
		notTheVendor := httptest.NewServer(http.NotFoundHandler())
		defer notTheVendor.Close()
		empty := httptest.NewServer(sandbox.New(sandbox.Options{Secret: testSecret, Connectors: -1}))
		defer empty.Close()
		out := doctorOn(t, fmt.Sprintf(`:9080 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
	}
}
:9081 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
	}
}
:9082 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
	}
}`, failingAPI.URL, notTheVendor.URL, empty.URL), 2)
		mustContain(t, out, "FAIL: vendor_unavailable: ", "doctor output")
		mustContain(t, out, "FAIL: the API refused the call (is `api` the vendor's API?)", "doctor output")
		mustContain(t, out, "connectors:   0 enabled in AuthKit\n  WARNING: no connector is enabled in AuthKit", "doctor output")
		if !strings.HasPrefix(out, "authkit #1 (server srv0)\n") {
			t.Fatalf("the report does not begin with the first handler:\n%s", out)
		}
		mustContain(t, out, "\n\nauthkit #2 (server srv1)\n", "doctor output: a blank line between handlers, and no site")
		mustContain(t, out, "  identity:     {http.auth.user.id} (user)\n", "doctor output: an identity from no header")
	})

	t.Run("a config that does not load, though every handler works", func(t *testing.T) {
		out := doctorOn(t, fmt.Sprintf(`app.example.com {
	@bad path_regexp [
	respond @bad 404
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api %s
	}
}`, api.URL), 1)
		mustContain(t, out, "the config does not load as it is: ", "doctor output")
		mustContain(t, out, "authkit #1 (server srv0, site app.example.com)", "doctor output")
		mustContain(t, out, "summary: 1 authkit handler(s), 0 ok, 1 failed", "doctor output")
	})

	t.Run("no authkit", func(t *testing.T) {
		out := doctorOn(t, ":9080 {\n\trespond ok\n}\n", 1)
		mustContain(t, out, "no authkit handler", "doctor output")
	})
}

// TestDoctorCommandExitStatus: `caddy authkit doctor` fails (so caddy exits
// 1) when a handler does not work, and succeeds when every one does.
func TestDoctorCommandExitStatus(t *testing.T) {
	api := httptest.NewServer(sandbox.New(sandbox.Options{Secret: testSecret}))
	defer api.Close()
	doctor := func(api string) (string, error) {
		path := writeCaddyfile(t, fmt.Sprintf(":9080 {\n\tauthkit {\n\t\tsecret {env.AUTHKIT_TEST_SECRET}\n\t\tapi %s\n\t}\n}\n", api))
		var out bytes.Buffer
		doctorOutput = &out
		defer func() { doctorOutput = os.Stdout }()
		cmd := &cobra.Command{Use: "authkit"}
		addDoctorCommand(cmd)
		cmd.SetArgs([]string{"doctor", "--config", path, "--adapter", "caddyfile"})
		cmd.SetOut(new(bytes.Buffer))
		cmd.SetErr(new(bytes.Buffer))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := doctor("http://" + closedPort(t))
	if err == nil || !strings.Contains(err.Error(), "1 problem") {
		t.Fatalf("error %v, want one that makes caddy exit 1", err)
	}
	mustContain(t, out, "FAIL: cannot reach", "the command's report")
	if out, err := doctor(api.URL); err != nil {
		t.Fatalf("a working config: %v\n%s", err, out)
	}
}

// TestProvisionWarnsOfAHeaderIdentity: the header site of the test config
// has no identity_trusted_proxies_only, so Caddy's log says what to do.
func TestProvisionWarnsOfAHeaderIdentity(t *testing.T) {
	startGateway(t, nil, "")
	log := readLog(t)
	mustContain(t, log, "the identity comes from the request header X-Auth-User", "Caddy's log")
	mustContain(t, log, "copy_headers X-Auth-User", "Caddy's log")
}

// TestConfigurationErrorsAreNotRetryable: a rejected secret and an `api`
// that is not the vendor's are the gateway's own faults, which trying again
// cannot cure; the gateway does not retry them either.
func TestConfigurationErrorsAreNotRetryable(t *testing.T) {
	pica := sandbox.New(sandbox.Options{Secret: "sk_test_1_anotherAccountsKey"})
	g := startGateway(t, pica, "")
	for _, path := range []string{"/authkit/token", "/authkit/connections"} {
		method := map[string]string{"/authkit/token": "POST", "/authkit/connections": "GET"}[path]
		res := g.as("alice", method, path, nil)
		expect(t, res, http.StatusBadGateway, "vendor_rejected_secret")
		if res.json(t)["error"].(map[string]any)["retryable"] != false {
			t.Fatalf("%s: rejected secret marked retryable: %s", path, res.body)
		}
	}
	if n := pica.Count("authkit"); n != 1 {
		t.Fatalf("%d token calls: a rejected secret was retried", n)
	}

	notVendor := httptest.NewServer(http.NotFoundHandler())
	defer notVendor.Close()
	g.picaURL = notVendor.URL
	g.load("")
	for _, path := range []string{"/authkit/token", "/authkit/connections", "/authkit/connectors"} {
		method := map[string]string{"/authkit/token": "POST"}[path]
		if method == "" {
			method = "GET"
		}
		res := g.as("alice", method, path, nil)
		expect(t, res, http.StatusBadGateway, "vendor_refused")
		env := res.json(t)["error"].(map[string]any)
		if env["retryable"] != false {
			t.Fatalf("%s: wrong api marked retryable: %s", path, res.body)
		}
		mustContain(t, env["message"].(string), "check `api`", path)
	}
}

// TestDoctorPrintsEachWarningOnceAndLogsNone: the doctor's report is where
// its warnings go; the handlers it provisions do not log them again to
// Caddy's log (stderr). The doctor runs in a process of its own, as
// `caddy authkit doctor` does, so its stderr is its own.
func TestDoctorPrintsEachWarningOnceAndLogsNone(t *testing.T) {
	if config := os.Getenv("AUTHKIT_DOCTOR_CONFIG"); config != "" {
		runDoctor(os.Stdout, config, "caddyfile")
		return
	}
	config := writeCaddyfile(t, `http://localhost:9085 {
	authkit {
		secret {env.AUTHKIT_TEST_SECRET}
		api http://`+closedPort(t)+`
		identity {http.request.header.X-Auth-User}
	}
}`)
	self, err := os.Executable() // caddytest rewrites os.Args
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestDoctorPrintsEachWarningOnceAndLogsNone$")
	cmd.Env = append(os.Environ(), "AUTHKIT_DOCTOR_CONFIG="+config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the doctor's process: %v\n%s", err, stderr.String())
	}
	const warning = "the identity comes from the request header X-Auth-User"
	if n := strings.Count(stdout.String(), "WARNING: "+warning); n != 1 {
		t.Fatalf("the warning printed %d times:\n%s", n, stdout.String())
	}
	mustContain(t, stderr.String(), "adapted config to JSON", "the doctor's log")
	if strings.Contains(stderr.String(), warning) {
		t.Fatalf("the doctor's warning was logged too:\n%s", stderr.String())
	}
}
