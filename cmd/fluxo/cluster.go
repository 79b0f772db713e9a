package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/core"
)

func init() { register(newClusterCmd) }

func newClusterCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Show and change the membership of a core cluster",
		Long: `Show and change the membership of a core cluster, through the HTTP endpoint
(--http-addr) of any of its brokers.`,
	}
	c.PersistentFlags().StringVar(&addr, "http", "127.0.0.1:8080", "HTTP address of any core broker (its --http-addr)")
	c.AddCommand(&cobra.Command{
		Use:   "members",
		Short: "List the brokers: Serf status, Raft role, fencing, partitions led",
		Long: `List every broker the cluster knows: its Serf status (alive, failed, left), its
Raft role (the leader is the controller), whether the controller has fenced it
(fenced brokers lead nothing and are out of the ISRs), its Kafka address and how
many partitions it leads.`,
		Example: `  fluxo cluster members --http 127.0.0.1:8080`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st core.ClusterStatus
			if err := clusterCall(cmd.Context(), http.MethodGet, addr, "/cluster/members", &st); err != nil {
				return err
			}
			return printMembers(cmd.OutOrStdout(), st)
		},
	})
	c.AddCommand(&cobra.Command{
		Use:   "remove NODE-ID",
		Short: "Remove a stopped broker from the cluster for good",
		Long: `Remove a broker from the cluster for good: it leaves the metadata, the Raft
voters and the Serf member list. A failed broker is not removed on its own: it
may come back. Stop it first; its partitions keep their replica lists, so move
them with reassignment or recreate the topics.`,
		Example: `  fluxo cluster remove 3 --http 127.0.0.1:8080`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 32)
			if err != nil {
				return fmt.Errorf("NODE-ID: got %q, want a broker id", args[0])
			}
			if err := clusterCall(cmd.Context(), http.MethodPost, addr, "/cluster/remove?node="+url.QueryEscape(strconv.Itoa(int(id))), nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed broker %d\n", id)
			return nil
		},
	})
	return c
}

// clusterCall sends one request to a broker's cluster endpoint and decodes
// a JSON answer into out (if not nil).
func clusterCall(ctx context.Context, method, addr, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the broker at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func printMembers(w io.Writer, st core.ClusterStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSERF\tRAFT\tFENCED\tKAFKA\tLEADS")
	for _, m := range st.Members {
		role := m.RaftRole
		if m.ID == st.Controller {
			role += " (controller)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%d\n", m.ID, m.Status, role, m.Fenced, m.KafkaAddr, m.PartitionsLed)
	}
	return tw.Flush()
}
