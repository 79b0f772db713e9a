//go:build e2e

// Package e2e holds the end-to-end tests of fluxo: fluxo processes started on
// loopback and driven by real clients (franz-go, kcat, mosquitto), and, for
// the network partition tests (nemesis_test.go, make nemesis), in network
// namespaces of a private bridge that the test builds as root. The files
// carry the build tag e2e, so "go test ./..." skips them; run them with
//
//	make e2e
//
// which needs the Debian packages that .ci/run installs.
package e2e
