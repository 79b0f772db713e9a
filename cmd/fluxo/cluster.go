package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core"
)

func init() { register(newClusterCmd) }

func newClusterCmd() *cobra.Command {
	var addr string
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Show and change the membership of a core cluster",
		Long: `Show and change the membership of a core cluster: list its brokers through
the HTTP endpoint (--http) of any of them, remove one through the Kafka
protocol (--brokers), rotate the gossip keys through the Raft port (--raft).`,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	members := &cobra.Command{
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
	}
	members.Flags().StringVar(&addr, "http", "127.0.0.1:8080", "HTTP address of any core broker (its --http-addr)")
	c.AddCommand(members, newClusterRemoveCmd(), newClusterKeysCmd())
	return c
}

func newClusterRemoveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "remove NODE-ID",
		Short: "Remove a stopped broker from the cluster for good",
		Long: `Remove a broker from the cluster for good: it leaves the metadata, the Raft
voters and the Serf member list. A failed broker is not removed on its own: it
may come back. Stop it first; its partitions keep their replica lists, so move
them with reassignment or recreate the topics.

The request is Kafka's UnregisterBroker, sent to the brokers of --brokers
(not to the one being removed), so it takes the Kafka listener's
authentication and needs Alter on the Cluster resource.`,
		Example: `  fluxo cluster remove 3 --brokers 127.0.0.1:9092`,
		Args:    cobra.ExactArgs(1),
	}
	brokers := brokersFlag(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := strconv.ParseInt(args[0], 10, 32)
		if err != nil || id < 0 {
			return fmt.Errorf("NODE-ID: got %q, want a broker id", args[0])
		}
		cl, err := newClient(cmd, *brokers, kgo.RetryTimeout(clientRetryTimeout))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 40*time.Second)
		defer cancel()
		if err := unregisterBroker(ctx, cl, int32(id)); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed broker %d\n", id)
		return nil
	}
	return c
}

// unregisterBroker sends UnregisterBroker for id, retrying while the
// answer is retriable (no controller yet) and ctx lasts.
func unregisterBroker(ctx context.Context, cl *kgo.Client, id int32) error {
	for {
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = id
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("unregister broker %d: %w", id, err)
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		if err == nil {
			return nil
		}
		msg := err.Error()
		if resp.ErrorMessage != nil && *resp.ErrorMessage != "" {
			msg += ": " + *resp.ErrorMessage
		}
		if !kerr.IsRetriable(err) {
			return fmt.Errorf("unregister broker %d: %s", id, msg)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unregister broker %d: %s", id, msg)
		case <-time.After(500 * time.Millisecond):
		}
	}
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
