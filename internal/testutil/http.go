package testutil

import (
	"io"
	"net/http"
	"testing"
)

// HTTPGet returns the status and body of a GET of url, failing t if the
// request cannot be made or the body read: for a node's /readyz and
// /metrics.
func HTTPGet(t testing.TB, url string) (status int, body string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
