package httpapi

import (
	"encoding/json"
	"net"
	"net/http"
	"testing"
)

// TestRejectConnectionIsA503ClientsUnderstand: net/http's client reads the
// reject answer as a 503 overloaded with Retry-After.
func TestRejectConnectionIsA503ClientsUnderstand(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		RejectConnection(c)
		_ = c.Close()
	}()
	res, err := http.Get("http://" + ln.Addr().String() + "/v1/dmaps/m/keys/k")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || body.Error.Code != CodeOverloaded {
		t.Fatalf("got %d Retry-After %q code %q; want 503, a Retry-After, %q", res.StatusCode, res.Header.Get("Retry-After"), body.Error.Code, CodeOverloaded)
	}
}
