package sandbox

import (
	"html/template"
	"net/http"
)

// consentPage is a stand-in for a provider's OAuth consent screen.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>Sandbox OAuth: {{.Name}}</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.5 system-ui, sans-serif; background: #f4f4f6; margin: 0; }
  .card { background: #fff; max-width: 26rem; margin: 4rem auto; padding: 1.5rem; border-radius: 12px; box-shadow: 0 2px 12px rgba(0,0,0,.1); }
  button { font: inherit; padding: .5rem 1rem; margin-right: .5rem; }
</style>
<div class="card">
{{if .Done}}
  <h1>{{.Name}}</h1>
  <p id="outcome">{{if eq .Status "success"}}Connected.{{else}}Not connected: {{.Error}}.{{end}} You can close this window.</p>
  <script>window.close()</script>
{{else}}
  <h1>{{.Name}} (sandbox)</h1>
  <p>An app wants to connect to your {{.Name}} account{{if .Identity}} for <b>{{.Identity}}</b>{{end}}.</p>
  <form method="post" action="/sandbox/oauth/authorize">
    <input type="hidden" name="state" value="{{.RawState}}">
    <button id="allow" name="decision" value="allow">Allow</button>
    <button id="deny" name="decision" value="deny">Deny</button>
  </form>
{{end}}
</div>
</html>
`))

type consentView struct {
	OAuthResult
	RawState string
	Name     string
	Identity string
	Done     bool
}

// serveConsent answers /sandbox/oauth/authorize: GET shows the consent page
// for a state; POST (the page's form) finishes the flow and, when
// @withone/auth put a return URL in the state, sends the tab back to the app
// with one_auth_state, as the vendor's OAuth callback does. Without a return
// URL (popup mode) it says so and closes the window.
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	raw := r.FormValue("state")
	state, ret, err := splitState(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	flow, ok := s.flow(state)
	if !ok {
		http.Error(w, ErrUnknownState.Error(), http.StatusBadRequest)
		return
	}
	result := flow.result
	if r.Method == http.MethodPost {
		result, err = s.FinishOAuth(state, r.PostFormValue("decision") == "allow")
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if ret != "" {
			http.Redirect(w, r, returnURL(ret, result), http.StatusSeeOther)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = consentPage.Execute(w, consentView{
		OAuthResult: result, RawState: raw, Name: title(result.Platform), Identity: flow.who.identity, Done: result.Status != OAuthPending,
	})
}
