// Package deploy holds the tests that keep the deployment files next to it
// true to the fluxo binary: the Raspberry Pi builds, the systemd units and
// their configuration, the container image and the compose demo, the
// Kubernetes manifests, and the Prometheus rules and Grafana dashboard, whose
// metrics are checked against a core and an edge started from ../cmd/fluxo.
//
// It is a module of its own, so that its heavy test dependencies (the
// Kubernetes API types, Prometheus's rule and PromQL parsers, the compose and
// Dockerfile loaders) stay out of the main module. Run it with
// "make deploy-test" at the root of the repository.
package deploy
