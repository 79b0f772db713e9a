package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newTopicReassignCmd(brokers *[]string) *cobra.Command {
	var (
		replicas   string
		partitions []int32
		wait       time.Duration
	)
	c := &cobra.Command{
		Use:   "reassign TOPIC",
		Short: "Move a topic's partitions to other brokers without stopping writes",
		Long: `Move the partitions of a topic (all, or those of --partitions) to the brokers
of --replicas, the first being the preferred leader: the new replicas are added
and copy the log while writes go on, then the replicas not listed are dropped
once every new one is in sync. With --wait the command waits for that end
(0: return once the move has started).

Use it to put a new broker to work: topics created afterwards use it anyway.`,
		Example: `  fluxo topic reassign telemetry --replicas 4,2,3 --partitions 0 --wait 10m
  fluxo topic reassign alarms --replicas 2,3,4`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := parseReplicas(replicas)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			topic := args[0]
			ctx := cmd.Context()
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return err
			}
			td, ok := md.Topics[topic]
			if !ok || td.Err != nil {
				return fmt.Errorf("topic %s: %v", topic, td.Err)
			}
			if len(partitions) == 0 {
				for p := range td.Partitions {
					partitions = append(partitions, p)
				}
				slices.Sort(partitions)
			}
			var req kadm.AlterPartitionAssignmentsReq
			for _, p := range partitions {
				if _, ok := td.Partitions[p]; !ok {
					return fmt.Errorf("--partitions: topic %s has no partition %d", topic, p)
				}
				req.Assign(topic, p, target)
			}
			resps, err := adm.AlterPartitionAssignments(ctx, req)
			if err != nil {
				return err
			}
			failed := 0
			resps.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
				if r.Err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "partition %d: %s\n", r.Partition, errCode(r.Err))
				}
			})
			if failed > 0 {
				return fmt.Errorf("%d of %d partitions failed", failed, len(partitions))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "moving %s partitions %s to brokers %s\n", topic, int32List(partitions), int32List(target))
			if wait <= 0 {
				return nil
			}
			return waitReassigned(ctx, adm, topic, partitions, target, wait)
		},
	}
	f := c.Flags()
	f.StringVar(&replicas, "replicas", "", "target broker ids, comma separated, preferred leader first (required)")
	f.Int32SliceVar(&partitions, "partitions", nil, "partitions to move (default: all)")
	f.DurationVar(&wait, "wait", 0, "wait up to this long for the move to finish (0: do not wait)")
	c.MarkFlagRequired("replicas")
	return c
}

func parseReplicas(s string) ([]int32, error) {
	var out []int32
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--replicas: got %q, want broker ids such as 1,2,3", s)
		}
		if slices.Contains(out, int32(n)) {
			return nil, fmt.Errorf("--replicas: broker %d twice", n)
		}
		out = append(out, int32(n))
	}
	return out, nil
}

// waitReassigned polls the metadata until every partition has exactly the
// target replicas, all in sync.
func waitReassigned(ctx context.Context, adm *kadm.Client, topic string, partitions, target []int32, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	want := slices.Sorted(slices.Values(target))
	for {
		md, err := adm.Metadata(ctx, topic)
		done := err == nil
		if done {
			for _, p := range partitions {
				pd := md.Topics[topic].Partitions[p]
				if !slices.Equal(slices.Sorted(slices.Values(pd.Replicas)), want) || len(pd.ISR) != len(target) {
					done = false
				}
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the move did not finish within %v", limit)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
