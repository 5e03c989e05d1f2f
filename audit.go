package caddyauthkit

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Outcomes of an audited request.
const (
	outcomeAllowed   = "allowed"
	outcomeDenied    = "denied"
	outcomeFailed    = "failed"
	outcomeReconnect = "reconnect_needed" // the third party refused the grant (401)
)

// codeStreamBroken is the audit's code of an answer that failed after it
// began; the caller saw the status, then a cut.
const codeStreamBroken = "stream_broken"

// audit records a request once its route is done: one info line on the
// audit logger (when audit is on) and the matching Caddy events, for every
// request on an audited route and every denial. Requests refused before
// the caller was asked for (404, 405) are not audited. failure is the
// envelope answered, if any; broken: the route failed after the answer
// had begun.
func (a *AuthKit) audit(rq *request, w *recorder, failure *apiError, broken bool) {
	if !rq.identified {
		return
	}
	status, code := w.status, ""
	switch {
	case broken:
		code = codeStreamBroken // the status was sent, the answer cut short
	case failure != nil:
		status, code = failure.Status, failure.Code
	}
	reconnect := w.Header().Get("AuthKit-Reconnect") != ""
	if reconnect {
		a.metrics.reconnects.Inc()
	}
	outcome := auditOutcome(status, code, reconnect)
	if outcome == outcomeDenied && status != http.StatusNotFound { // a foreign id's 404 is counted where found
		a.metrics.denied(code)
	}
	if !rq.route.audited && outcome != outcomeDenied {
		return
	}
	names := eventNames(rq.route, outcome)
	if a.auditLog == nil && !a.events.wanted(names) {
		return
	}
	fact := auditFact{
		route: rq.route.name, outcome: outcome, status: status, code: code,
		identityType: rq.caller.Type, platform: rq.platform, connectionID: rq.connectionID,
		method: rq.r.Method, path: rq.upstreamPath, bytes: w.bytes, duration: time.Since(rq.start),
		requestID: rq.requestID(),
	}
	if rq.caller.ID != "" {
		fact.identity = a.hash(rq.caller.Type + ":" + rq.caller.ID)
	}
	if a.auditLog != nil {
		a.auditLog.Info("authkit "+rq.route.name, fact.fields()...)
	}
	a.events.emit(names, fact)
}

// auditOutcome: 401, 403 and a connection that is not the caller's (404,
// so the answer reveals nothing) are denials; the rest of 4xx and 5xx are
// failures.
func auditOutcome(status int, code string, reconnect bool) string {
	switch {
	case reconnect:
		return outcomeReconnect
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound && code == "connection_not_found":
		return outcomeDenied
	case status >= 400, code == codeStreamBroken:
		return outcomeFailed
	}
	return outcomeAllowed
}

// eventNames are the Caddy events a request on rt with outcome emits.
func eventNames(rt *route, outcome string) []string {
	if outcome == outcomeDenied {
		return []string{eventDenied}
	}
	switch rt {
	case passthroughRoute:
		if outcome == outcomeReconnect {
			return []string{eventPassthrough, eventReconnect}
		}
		return []string{eventPassthrough}
	case ticketRoute:
		if outcome == outcomeAllowed {
			return []string{eventTicketIssued}
		}
	case connectionRoute:
		if outcome == outcomeAllowed {
			return []string{eventConnectionDeleted}
		}
	}
	return nil
}

// auditFact is what the audit line and the events say about a request:
// never a connection key, never the caller's identity in clear. path is the
// third party's path without its query, as Caddy's access log has it (it
// may name the user there, as /users/{email}/ does). Fields that do not
// apply to a request are left out of its line.
type auditFact struct {
	route, outcome, code   string
	status                 int
	identityType, identity string
	platform, connectionID string
	method, path           string
	bytes                  int64
	duration               time.Duration
	requestID              string
}

// fields are the audit line's, named as Caddy's access log names the same
// facts (status, size, duration, and the request's uuid), each only when
// set.
func (f auditFact) fields() []zap.Field {
	fields := make([]zap.Field, 0, 13)
	add := func(name, value string) {
		if value != "" {
			fields = append(fields, zap.String(name, value))
		}
	}
	add("route", f.route)
	add("outcome", f.outcome)
	fields = append(fields, zap.Int("status", f.status))
	add("code", f.code)
	add("identity_type", f.identityType)
	add("identity", f.identity)
	add("platform", f.platform)
	add("connection_id", f.connectionID)
	add("method", f.method)
	add("path", f.path)
	fields = append(fields, zap.Int64("size", f.bytes), zap.Duration("duration", f.duration))
	add("uuid", f.requestID)
	return fields
}

func (f auditFact) data() map[string]any {
	return map[string]any{
		"route": f.route, "outcome": f.outcome, "status": f.status, "code": f.code,
		"identity_type": f.identityType, "identity": f.identity, "platform": f.platform,
		"connection_id": f.connectionID, "method": f.method, "path": f.path,
		"size": f.bytes, "duration": f.duration.Seconds(), "uuid": f.requestID,
	}
}
