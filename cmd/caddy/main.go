// Command caddy is Caddy with its standard modules, the authkit handler and
// the Pica sandbox (for the demo and tests; production builds leave it out).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddyauthkit/caddyauthkit"
	_ "github.com/caddyauthkit/caddyauthkit/sandbox"
)

func main() {
	caddycmd.Main()
}
