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

// auditRecord is one audited request: filled in as facts become known, and
// ended once, by a.audit, when the handler returns.
type auditRecord struct {
	route        *route
	id           identity
	start        time.Time
	platform     string
	connectionID string
	path         string // upstream path of a passthrough call, without query
	status       int    // set when the answer was written by someone else
	bytes        int64
	reconnect    bool
}

// newAudit starts the record of a request on rt by id.
func newAudit(rt *route, id identity) *auditRecord {
	return &auditRecord{route: rt, id: id, start: time.Now()}
}

// audit ends rec with the handler's error: one info line on the audit
// logger (when audit is on) and the matching Caddy events. It is meant to
// be deferred with a pointer to the handler's named error.
func (a *AuthKit) audit(r *http.Request, rec *auditRecord, errp *error) {
	var err error
	if errp != nil {
		err = *errp
	}
	status, code := rec.status, ""
	if _, started := err.(streamError); started && status != 0 {
		code = codeStreamBroken // the status was sent, the answer cut short
	} else if err != nil {
		body := errorBody(err)
		status, code = body.Status, body.Code
	}
	if status == 0 {
		status = http.StatusOK
	}
	outcome := auditOutcome(status, code, rec.reconnect)
	names := rec.eventNames(outcome)
	if a.auditLog == nil && !a.events.wanted(names) {
		return
	}
	fact := auditFact{
		route: rec.route.name, outcome: outcome, status: status, code: code,
		identityType: rec.id.Type, platform: rec.platform, connectionID: rec.connectionID,
		method: r.Method, path: rec.path, bytes: rec.bytes, duration: time.Since(rec.start),
		requestID: requestID(r),
	}
	if rec.id.ID != "" {
		fact.identity = a.hash(rec.id.Type + ":" + rec.id.ID)
	}
	if a.auditLog != nil {
		a.auditLog.Info("authkit "+rec.route.name, fact.fields()...)
	}
	a.events.emit(names, fact)
}

// auditOutcome: 401, 403 and a connection that is not the caller's are
// denials; the rest of 4xx and 5xx are failures.
func auditOutcome(status int, code string, reconnect bool) string {
	switch {
	case reconnect:
		return outcomeReconnect
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound && (code == "connection_not_found" || code == "connection_not_owned"):
		return outcomeDenied
	case status >= 400, code == codeStreamBroken:
		return outcomeFailed
	}
	return outcomeAllowed
}

// eventNames are the Caddy events a request with outcome emits.
func (rec *auditRecord) eventNames(outcome string) []string {
	if outcome == outcomeDenied {
		return []string{eventDenied}
	}
	switch rec.route {
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
// never a connection key, never an identity in clear.
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

func (f auditFact) fields() []zap.Field {
	return []zap.Field{
		zap.String("route", f.route),
		zap.String("outcome", f.outcome),
		zap.Int("status", f.status),
		zap.String("code", f.code),
		zap.String("identity_type", f.identityType),
		zap.String("identity", f.identity),
		zap.String("platform", f.platform),
		zap.String("connection_id", f.connectionID),
		zap.String("method", f.method),
		zap.String("path", f.path),
		zap.Int64("bytes", f.bytes),
		zap.Duration("duration", f.duration),
		zap.String("request_id", f.requestID),
	}
}

func (f auditFact) data() map[string]any {
	return map[string]any{
		"route": f.route, "outcome": f.outcome, "status": f.status, "code": f.code,
		"identity_type": f.identityType, "identity": f.identity, "platform": f.platform,
		"connection_id": f.connectionID, "method": f.method, "path": f.path,
		"bytes": f.bytes, "duration": f.duration.Seconds(), "request_id": f.requestID,
	}
}

// auditRefused records a request refused before its route's handler ran,
// such as one without an identity or with a bad ticket (wired in serve).
func (a *AuthKit) auditRefused(r *http.Request, rt *route, err error) {
	a.audit(r, newAudit(rt, identity{}), &err)
}
