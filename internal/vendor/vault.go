package vendor

import (
	"bytes"
	"encoding/json"
	"strings"
)

// Connection is the part of a vault row the gateway checks.
type Connection struct {
	ID           string `json:"id"`
	Key          string `json:"key"`
	Platform     string `json:"platform"`
	Name         string `json:"name"`
	Identity     string `json:"identity"`
	IdentityType string `json:"identityType"`
	Active       *bool  `json:"active"`
}

// OwnedBy: the connection is the identity's, of that type.
func (c Connection) OwnedBy(identity, identityType string) bool {
	return c.Identity == identity && c.IdentityType == identityType
}

// Usable: active (a row without the field counts as active), with an id
// and a key.
func (c Connection) Usable() bool {
	return (c.Active == nil || *c.Active) && c.Key != "" && c.ID != ""
}

// VaultPage is one answer of GET /v1/vault/connections: its fields as the
// vendor wrote them, and each row both raw and decoded.
type VaultPage struct {
	fields map[string]json.RawMessage
	raw    []json.RawMessage
	Rows   []Connection
}

// Pages is how many pages the vendor says the list has; 1 when it does
// not say.
func (page VaultPage) Pages() int {
	var n int
	if json.Unmarshal(page.fields["pages"], &n) != nil || n < 1 {
		return 1
	}
	return n
}

// decodeVaultPage reads a vault list answer.
func decodeVaultPage(body []byte) (VaultPage, error) {
	var page VaultPage
	if json.Unmarshal(body, &page.fields) != nil || json.Unmarshal(page.fields["rows"], &page.raw) != nil || page.raw == nil {
		return page, BadAnswer("not a list of connections")
	}
	page.Rows = make([]Connection, len(page.raw))
	for i, row := range page.raw {
		if json.Unmarshal(row, &page.Rows[i]) != nil {
			return page, BadAnswer("a connection that is not an object")
		}
	}
	return page, nil
}

// Encode writes the page with only the rows keep accepts, each as the
// vendor wrote it or, with withoutKeys, without any field named like a key
// (key, connectionKey, secretKey: any name that, case-folded, is or ends in
// "key", at any depth). When rows are left out, total and pages count
// what is kept: the vendor's counts would tell of rows the caller may not
// see.
func (page VaultPage) Encode(keep func(Connection) bool, withoutKeys bool) []byte {
	kept := make([]json.RawMessage, 0, len(page.raw))
	for i, row := range page.raw {
		if !keep(page.Rows[i]) {
			continue
		}
		if withoutKeys {
			// Numbers as written: as float64, 12345678901234567890 would
			// come out 12345678901234567000.
			dec := json.NewDecoder(bytes.NewReader(row))
			dec.UseNumber()
			var v any
			_ = dec.Decode(&v) // decoded once already
			row, _ = json.Marshal(dropKeys(v))
		}
		kept = append(kept, row)
	}
	fields := make(map[string]json.RawMessage, len(page.fields))
	for name, value := range page.fields {
		fields[name] = value
	}
	fields["rows"], _ = json.Marshal(kept)
	if len(kept) < len(page.raw) {
		fields["total"], _ = json.Marshal(len(kept))
		fields["pages"] = json.RawMessage("1")
	}
	out, _ := json.Marshal(fields)
	return out
}

// dropKeys removes every member named like a key from v, at any depth.
func dropKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for name, member := range v {
			if strings.HasSuffix(strings.ToLower(name), "key") {
				delete(v, name)
				continue
			}
			v[name] = dropKeys(member)
		}
	case []any:
		for i := range v {
			v[i] = dropKeys(v[i])
		}
	}
	return v
}

// decodeConnection reads a vault row, bare or in a {rows: [...]} list.
func decodeConnection(body []byte, id string) (Connection, error) {
	var conn Connection
	if err := json.Unmarshal(body, &conn); err != nil {
		return conn, BadAnswer("not a connection")
	}
	if conn.ID == "" {
		if page, err := decodeVaultPage(body); err == nil {
			for _, row := range page.Rows {
				if row.ID == id {
					conn = row
				}
			}
		}
	}
	if conn.ID != id {
		return conn, BadAnswer("another connection than asked for")
	}
	return conn, nil
}
