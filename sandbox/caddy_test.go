package sandbox

import (
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestCaddyfileProvider(t *testing.T) {
	h := new(Handler)
	d := caddyfile.NewTestDispenser(`pica_sandbox {
		provider one
		connection alice gmail
	}`)
	if err := h.UnmarshalCaddyfile(d); err != nil || h.Provider != ProviderOne || len(h.Connections) != 1 {
		t.Fatalf("%v %+v", err, h)
	}
	if err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(`pica_sandbox {
		provider pika
	}`)); err == nil {
		t.Fatal("provider pika accepted")
	}
	if err := (&Handler{Provider: "pika"}).Provision(caddy.Context{}); err == nil {
		t.Fatal("Provision accepted provider pika")
	}
	if err := h.Provision(caddy.Context{}); err != nil || h.server.opts.Provider != ProviderOne {
		t.Fatalf("Provision: %v", err)
	}
	res, body := callOne(t, h.server, "GET", "/v1/vault/connections", DefaultSecret, "", nil)
	if res.StatusCode != 200 || body["total"] != 1.0 {
		t.Fatalf("seeded One sandbox: %d %v", res.StatusCode, body)
	}
}
