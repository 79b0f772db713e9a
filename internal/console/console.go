// Package console is the machinery every node's web console shares: the
// embedded stylesheet and script (no build step, nothing fetched from
// elsewhere: every request stays on the node), a handler for a node's page,
// and the JSON helper of the APIs under the pages.
//
// A node serves its console on its HTTP port:
//
//	GET /                the node's page (HTML, embedded in the binary)
//	GET /console/...     console.css, console.js, and page.js (the node's)
//	GET /api/...         the node's JSON, which the page polls
//
// The pages themselves live next to their nodes (core/console.html,
// edge/console.html); this package knows nothing of either.
package console

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Routes returns the console's routes for a node whose page is page (a
// whole HTML document) with its script (served as /console/page.js; the
// page's policy allows no inline script): GET / and the shared assets
// under /console/. The keys are http.ServeMux patterns.
func Routes(page, script []byte) map[string]http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("console: embedded static directory missing: " + err.Error())
	}
	assets := http.StripPrefix("/console/", http.FileServer(http.FS(sub)))
	return map[string]http.Handler{
		"GET /{$}": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-store")
			// Everything from this node, nothing from elsewhere.
			h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
			w.Write(page)
		}),
		"GET /console/page.js": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(script)
		}),
		"GET /console/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "no-cache")
			assets.ServeHTTP(w, r)
		}),
	}
}

// JSON writes v as the JSON answer of an API endpoint, 200 OK.
func JSON(w http.ResponseWriter, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

// Handler is an API endpoint answering the JSON of what get returns.
func Handler[T any](get func(*http.Request) T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { JSON(w, get(r)) })
}

// Merge returns one route map of several; a pattern in two panics, a
// broken invariant of the node that builds them.
func Merge(maps ...map[string]http.Handler) map[string]http.Handler {
	out := map[string]http.Handler{}
	for _, m := range maps {
		for k, v := range m {
			if _, dup := out[k]; dup {
				panic("console: route " + k + " registered twice")
			}
			out[k] = v
		}
	}
	return out
}
