package caddyauthkit

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// connectorsTTL is how long the list of enabled connectors is shared.
const connectorsTTL = 30 * time.Second

// serveConnectors lists the connectors enabled in AuthKit; the answer is the
// same for every caller, so it is cached briefly.
func (a *AuthKit) serveConnectors(w *recorder, rq *request) error {
	q := rq.r.URL.Query()
	query := url.Values{"authkit": {"true"}}
	for _, name := range []string{"platform", "category"} {
		if v := q.Get(name); v != "" {
			if !validName(v) {
				return newError(http.StatusBadRequest, "query_invalid", name+" is not a valid name")
			}
			query.Set(name, v)
		}
	}
	if err := copyPaging(q, query); err != nil {
		return err
	}
	body, err := a.connectors.Load(rq.ctx, query.Encode(), func(ctx context.Context) ([]byte, bool, error) {
		body, err := a.vendor.Connectors(ctx, query)
		return body, true, err
	})
	if err != nil {
		return err
	}
	writeJSON(w, body)
	return nil
}
