package vendor

import "testing"

func TestDecodeConnectionBareOrListed(t *testing.T) {
	bare := `{"id":"c1","key":"k1","identity":"alice","identityType":"user"}`
	listed := `{"rows":[{"id":"c0","key":"k0"},{"id":"c1","key":"k1","identity":"alice","identityType":"user"}],"total":2}`
	for _, body := range []string{bare, listed} {
		conn, err := decodeConnection([]byte(body), "c1")
		if err != nil || conn.ID != "c1" || conn.Key != "k1" || !conn.OwnedBy("alice", "user") {
			t.Fatalf("%s: %+v, %v", body, conn, err)
		}
	}
	if conn, _ := decodeConnection([]byte(`{"rows":[{"id":"c0"}]}`), "c1"); conn.ID == "c1" {
		t.Fatal("found a connection the list does not have")
	}
	if _, err := decodeConnection([]byte(`<html>`), "c1"); err == nil {
		t.Fatal("a body that is not JSON was decoded")
	}
}
