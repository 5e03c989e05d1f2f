package caddyauthkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddyauthkit/caddyauthkit/internal/vendor"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "authkit",
		Short:     "Commands of the authkit handler",
		CobraFunc: addDoctorCommand,
	})
}

// addDoctorCommand adds `doctor` under the `authkit` command.
func addDoctorCommand(cmd *cobra.Command) {
	doctor := &cobra.Command{
		Use:   "doctor [--config <path>] [--adapter <name>]",
		Short: "Checks every authkit handler of a config against the vendor",
		Long: `Doctor loads the config (a Caddyfile by default) and, for every authkit
handler in it, resolves the secret, makes read-only calls to the vendor's API
through the handler's own transport, and prints what it found and what looks
like a mistake. It starts no server and never prints the secret.
It exits 0 only when every handler works.`,
		RunE: caddycmd.WrapCommandFuncForCobra(cmdDoctor),
	}
	doctor.Flags().StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
	doctor.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	cmd.AddCommand(doctor)
}

// cmdDoctor is `caddy authkit doctor`: exit status 1 when a handler fails.
func cmdDoctor(fl caddycmd.Flags) (int, error) {
	if failed := runDoctor(doctorOutput, fl.String("config"), fl.String("adapter")); failed > 0 {
		return 1, fmt.Errorf("authkit doctor: %d problem(s) found", failed)
	}
	return 0, nil
}

// doctorOutput receives the doctor's report.
var doctorOutput io.Writer = os.Stdout

// doctorTimeout bounds each handler's calls to the vendor.
const doctorTimeout = 10 * time.Second

// runDoctor checks every authkit handler of the config file and writes one
// block per handler and a summary line to w. It returns how many handlers
// failed (1 when the config itself cannot be loaded).
func runDoctor(w io.Writer, configFile, adapter string) int {
	if problem := configFileMissing(configFile); problem != "" {
		fmt.Fprintln(w, problem)
		return 1
	}
	cfgJSON, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		fmt.Fprintf(w, "cannot load the config: %v\n", err)
		return 1
	}
	var tree any
	if err := json.Unmarshal(cfgJSON, &tree); err != nil {
		fmt.Fprintf(w, "cannot read the adapted config: %v\n", err)
		return 1
	}
	var found []foundHandler
	findHandlers(tree, "", "", &found)
	if len(found) == 0 {
		fmt.Fprintln(w, "no authkit handler in the config")
		return 1
	}
	defer observeLayout.Store(nil)
	layouts, loadErr := provisionAll(cfgJSON)
	if loadErr != nil {
		fmt.Fprintf(w, "the config does not load as it is: %v\n\n", loadErr)
	}
	// The handlers need a context whose config is set (reverse_proxy looks
	// up apps), but no app is loaded: nothing listens.
	base, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		fmt.Fprintf(w, "cannot set up a Caddy context: %v\n", err)
		return 1
	}
	ctx, cancel := caddy.NewContext(base)
	defer cancel() // cleans up the handlers' guest reverse_proxy

	failed := 0
	for i, h := range found {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if !checkHandler(ctx, w, i+1, h, layouts.take(h)) {
			failed++
		}
	}
	if loadErr != nil && failed == 0 {
		failed = 1
	}
	fmt.Fprintf(w, "\nsummary: %d authkit handler(s), %d ok, %d failed\n", len(found), len(found)-failed, failed)
	return failed
}

// configFileMissing says plainly that the config file is not there; Caddy
// would read a missing ./Caddyfile as an empty config.
func configFileMissing(configFile string) string {
	if configFile == "" {
		if _, err := os.Stat("Caddyfile"); errors.Is(err, os.ErrNotExist) {
			return "no config: there is no ./Caddyfile here; name one with --config"
		}
		return ""
	}
	if _, err := os.Stat(configFile); errors.Is(err, os.ErrNotExist) {
		return "no config: the file " + configFile + " does not exist"
	}
	return ""
}

// foundHandler is one authkit handler of the adapted config.
type foundHandler struct {
	raw          json.RawMessage
	server, site string
}

// layoutReport is what provisioning said of one handler's place.
type layoutReport struct {
	copied []string
	err    error
}

// layoutReports are the reports by server, site and prefix, in the order
// the handlers were provisioned.
type layoutReports map[string][]layoutReport

func layoutKey(server, site, prefix string) string {
	return server + "\x00" + site + "\x00" + strings.ToLower(prefix)
}

// take hands out the next report for h.
func (r layoutReports) take(h foundHandler) *layoutReport {
	var prefix struct {
		Prefix string `json:"prefix"`
	}
	_ = json.Unmarshal(h.raw, &prefix)
	key := layoutKey(h.server, h.site, normalPrefix(prefix.Prefix))
	if len(r[key]) == 0 {
		return nil
	}
	report := r[key][0]
	r[key] = r[key][1:]
	return &report
}

// provisionAll provisions the whole config as `caddy validate` does,
// starting nothing, and hears each authkit handler's layout on the way:
// where it sits decides what is wrong with it. The hook stays set until
// runDoctor ends, so no handler it provisions logs what the report says.
func provisionAll(cfgJSON []byte) (layoutReports, error) {
	var cfg caddy.Config
	if err := caddy.StrictUnmarshalJSON(cfgJSON, &cfg); err != nil {
		return nil, err
	}
	reports := make(layoutReports)
	observe := func(a *AuthKit, l *layout, copied []string, err error) {
		key := layoutKey(l.server.Name(), l.hosts, a.Prefix)
		reports[key] = append(reports[key], layoutReport{copied: copied, err: err})
	}
	observeLayout.Store(&observe)
	return reports, caddy.Validate(&cfg)
}

// findHandlers walks the config for authkit handlers, in routes and
// subroutes at any depth, noting the server and the nearest host matcher.
func findHandlers(node any, server, site string, out *[]foundHandler) {
	switch v := node.(type) {
	case []any:
		for _, item := range v {
			findHandlers(item, server, site, out)
		}
	case map[string]any:
		if v["handler"] == "authkit" {
			raw, _ := json.Marshal(v)
			*out = append(*out, foundHandler{raw: raw, server: server, site: site})
			return
		}
		if hosts := matchedHosts(v["match"]); hosts != "" {
			site = hosts
		}
		for _, k := range slices.Sorted(maps.Keys(v)) { // handlers in a stable order
			if servers, ok := v[k].(map[string]any); ok && k == "servers" {
				for _, name := range slices.Sorted(maps.Keys(servers)) {
					findHandlers(servers[name], name, "", out)
				}
				continue
			}
			findHandlers(v[k], server, site, out)
		}
	}
}

// matchedHosts is the host list of a route's matcher sets, or "".
func matchedHosts(match any) string {
	sets, _ := match.([]any)
	var hosts []string
	for _, set := range sets {
		m, _ := set.(map[string]any)
		list, _ := m["host"].([]any)
		for _, h := range list {
			if s, ok := h.(string); ok {
				hosts = append(hosts, s)
			}
		}
	}
	return strings.Join(hosts, " ")
}

// checkHandler provisions one handler, calls the vendor and prints a block;
// it reports whether the handler works.
func checkHandler(ctx caddy.Context, w io.Writer, n int, h foundHandler, place *layoutReport) bool {
	where := "server " + h.server
	if h.site != "" {
		where += ", site " + h.site
	}
	fmt.Fprintf(w, "authkit #%d (%s)\n", n, where)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-13s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fail := func(format string, args ...any) bool {
		fmt.Fprintf(w, "  FAIL: %s\n", fmt.Sprintf(format, args...))
		return false
	}

	a := new(AuthKit)
	if err := json.Unmarshal(h.raw, a); err != nil {
		return fail("cannot read the handler: %v", err)
	}
	if err := a.setDefaults(); err != nil {
		return fail("%v", err)
	}
	line("provider", "%s", a.Provider)
	line("api", "%s", a.API)
	line("prefix", "%s", a.Prefix)
	line("cors origins", "%s", strings.Join(a.CORSOrigins, " "))
	identity := a.Identity + " (" + a.IdentityType + ")"
	if headers := identityHeaders(a.Identity, a.IdentityType); len(headers) > 0 {
		trusted := "from any client"
		if a.IdentityTrustedProxiesOnly {
			trusted = "from trusted proxies only"
		}
		identity += ", request header " + strings.Join(headers, ", ") + " " + trusted
	}
	line("identity", "%s", identity)
	line("ticket ttl", "%s", time.Duration(a.TicketTTL))
	var copied []string
	if place != nil {
		copied = place.copied
	}
	for _, warning := range a.warnings(copied) {
		fmt.Fprintf(w, "  WARNING: %s\n", warning)
	}
	if place != nil && place.err != nil {
		return fail("%v", place.err)
	}

	if err := a.Provision(ctx); err != nil {
		line("secret", "%s", describeSecret(a.Secret, ""))
		return fail("%v", err)
	}
	defer a.Cleanup()
	line("secret", "%s", describeSecret(a.Secret, a.secret))
	if err := a.Validate(); err != nil {
		return fail("%v", err)
	}

	callCtx, cancel := context.WithTimeout(context.Background(), doctorTimeout)
	defer cancel()
	body, err := a.vendor.Connectors(callCtx, url.Values{"authkit": {"true"}, "limit": {"1"}})
	if err != nil {
		return fail("%s", explainDoctor(err, a.API))
	}
	line("secret ok", "accepted by %s", a.API)
	var page struct {
		Total *int `json:"total"`
	}
	if json.Unmarshal(body, &page) == nil && page.Total != nil {
		line("connectors", "%d enabled in AuthKit", *page.Total)
		if *page.Total == 0 {
			fmt.Fprintf(w, "  WARNING: no connector is enabled in AuthKit: the iframe will list nothing\n")
		}
	}
	if a.provider.WhiteLabel {
		white, err := a.vendor.WhiteLabel(callCtx)
		if err != nil {
			return fail("reading the account's flags: %s", explainDoctor(err, a.API))
		}
		line("white label", "%t", white)
	}
	fmt.Fprintln(w, "  OK")
	return true
}

// describeSecret tells where the secret comes from and, once resolved
// (secret != ""), its kind and length: never its value, nor any of it. A
// secret written into the config is said to be so.
func describeSecret(configured, secret string) string {
	source := configured
	if !isPlaceholder(configured) {
		source = "written in the config"
		secret = configured
	}
	if secret == "" {
		return source
	}
	kind := ""
	for _, prefix := range []string{"sk_test_", "sk_live_"} {
		if strings.HasPrefix(secret, prefix) {
			kind = prefix + "… "
		}
	}
	return fmt.Sprintf("%s (%s%d characters)", source, kind, len(secret))
}

// explainDoctor turns a failed vendor call into a line for a person, with
// its cause: refused, DNS, TLS, timeout, or the vendor's status.
func explainDoctor(err error, api string) string {
	body := errorBody(err)
	cause := vendor.Cause(err)
	switch body.Code {
	case "vendor_rejected_secret":
		return "secret rejected by " + api + " (" + cause + "; check the key, and that provider matches the account)"
	case "vendor_unreachable":
		return "cannot reach " + api + ": " + cause
	case "vendor_timeout":
		return "cannot reach " + api + ": no answer within " + doctorTimeout.String() + " (" + cause + ")"
	case "vendor_refused":
		return "the API refused the call (is `api` the vendor's API?): " + cause
	}
	return body.Code + ": " + body.Message + " (" + cause + ")"
}
