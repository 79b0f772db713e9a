package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(newTopicCmd) }

func newTopicCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, delete and reassign topics",
		Long: `Manage the topics of a fluxo core cluster, or of any Kafka-compatible
cluster, over the Kafka protocol.

Errors are reported per topic, with the Kafka error code the broker answered
("topic telemetry: TOPIC_ALREADY_EXISTS: ..."); the command exits non-zero if
any topic failed.

` + clientSecHelp,
		Example: `  fluxo topic create telemetry --partitions 6
  fluxo topic list
  fluxo topic describe telemetry alarms
  fluxo topic delete telemetry
  fluxo topic reassign telemetry --replicas 2,3,4
  fluxo topic list --brokers core-1:9092,core-2:9092`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	brokers := brokersFlag(c)
	c.AddCommand(
		newTopicCreateCmd(brokers),
		newTopicListCmd(brokers),
		newTopicDescribeCmd(brokers),
		newTopicDeleteCmd(brokers),
		newTopicReassignCmd(brokers),
	)
	return c
}

// newAdmin returns an admin client on brokers and the client under it, for
// the caller to close.
func newAdmin(cmd *cobra.Command, brokers []string) (*kadm.Client, *kgo.Client, error) {
	cl, err := newClient(cmd, brokers, kgo.RetryTimeout(clientRetryTimeout))
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl, nil
}

// topicsFailed reports failed topics, already printed to stderr one by one,
// as the command's error.
func topicsFailed(failed, total int) error {
	if failed == 0 {
		return nil
	}
	if total == 1 {
		return errors.New("1 topic failed")
	}
	return fmt.Errorf("%d of %d topics failed", failed, total)
}

func newTopicCreateCmd(brokers *[]string) *cobra.Command {
	var (
		partitions  int32
		replication int16
		configs     []string
	)
	c := &cobra.Command{
		Use:   "create NAME...",
		Short: "Create topics",
		Long: `Create one or more topics, each with --partitions partitions and
--replication-factor replicas per partition (-1: the broker's default).
Topic configuration is given with -c/--topic-config KEY=VALUE, once per key
(--config is the YAML file of fluxo's own flags, as for every command).`,
		Example: `  fluxo topic create telemetry
  fluxo topic create telemetry alarms --partitions 6 --replication-factor 3
  fluxo topic create alarms -c retention.ms=604800000 -c cleanup.policy=delete`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, topics []string) error {
			if partitions < 1 && partitions != -1 {
				return fmt.Errorf("--partitions: got %d, want at least 1 (or -1 for the broker's default)", partitions)
			}
			if replication < 1 && replication != -1 {
				return fmt.Errorf("--replication-factor: got %d, want at least 1 (or -1 for the broker's default)", replication)
			}
			cfg, err := parseTopicConfigs(configs)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			return createTopics(cmd.Context(), adm, topics, partitions, replication, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := c.Flags()
	f.Int32Var(&partitions, "partitions", 1, "partitions per topic (-1: the broker's default)")
	f.Int16Var(&replication, "replication-factor", -1, "replicas per partition (-1: the broker's default)")
	f.StringArrayVarP(&configs, "topic-config", "c", nil, "topic configuration KEY=VALUE (repeatable)")
	return c
}

// parseTopicConfigs turns KEY=VALUE pairs into a CreateTopics config map.
// A key given twice is an error.
func parseTopicConfigs(pairs []string) (map[string]*string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]*string, len(pairs))
	for _, kv := range pairs {
		k, v, err := parseKeyValue("topic-config", kv)
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--topic-config: %s given twice", k)
		}
		m[k] = kadm.StringPtr(v)
	}
	return m, nil
}

func createTopics(ctx context.Context, adm *kadm.Client, topics []string, partitions int32, replication int16, configs map[string]*string, stdout, stderr io.Writer) error {
	resps, err := adm.CreateTopics(ctx, partitions, replication, configs, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	failed := 0
	for _, t := range topics {
		r, ok := resps[t]
		switch {
		case !ok:
			fmt.Fprintln(stderr, topicError(t, errors.New("missing from the broker's answer"), ""))
			failed++
		case r.Err != nil:
			fmt.Fprintln(stderr, topicError(t, r.Err, r.ErrMessage))
			failed++
		default:
			fmt.Fprintf(stdout, "created topic %s%s\n", t, createdShape(r))
		}
	}
	return topicsFailed(failed, len(topics))
}

// createdShape describes the partitions and replication factor a broker
// reported for a created topic, when it reported them (CreateTopics v5+).
func createdShape(r kadm.CreateTopicResponse) string {
	if r.NumPartitions <= 0 || r.ReplicationFactor <= 0 {
		return ""
	}
	return fmt.Sprintf(" (partitions %d, replication factor %d)", r.NumPartitions, r.ReplicationFactor)
}

func newTopicListCmd(brokers *[]string) *cobra.Command {
	var internal bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List topics with their partition count and replication factor",
		Example: `  fluxo topic list
  fluxo topic list --internal`,
		Aliases: []string{"ls"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			var topics kadm.TopicDetails
			if internal {
				topics, err = adm.ListTopicsWithInternal(cmd.Context())
			} else {
				topics, err = adm.ListTopics(cmd.Context())
			}
			if err != nil {
				return fmt.Errorf("list topics: %w", err)
			}
			return printTopicList(cmd.OutOrStdout(), topics)
		},
	}
	c.Flags().BoolVar(&internal, "internal", false, "include internal topics (__consumer_offsets)")
	return c
}

func printTopicList(w io.Writer, topics kadm.TopicDetails) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS")
	for _, t := range topics.Sorted() {
		if t.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", t.Topic, errCode(t.Err))
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Topic, len(t.Partitions), t.Partitions.NumReplicas())
	}
	return tw.Flush()
}

func newTopicDescribeCmd(brokers *[]string) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME...",
		Short: "Show a topic's partitions, leaders, replicas, offsets and configuration",
		Long: `Show each partition of the named topics: its leader, replicas, in-sync
replicas, leader epoch, log start offset and high watermark; then the topic's
configuration, when the broker answers DescribeConfigs.`,
		Example: `  fluxo topic describe telemetry
  fluxo topic describe telemetry alarms --brokers core-1:9092`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, topics []string) error {
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			return describeTopics(cmd.Context(), adm, topics, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func describeTopics(ctx context.Context, adm *kadm.Client, topics []string, stdout, stderr io.Writer) error {
	details, err := adm.ListTopicsWithInternal(ctx, topics...)
	if err != nil {
		return fmt.Errorf("describe topics: %w", err)
	}
	failed := 0
	var found []string
	for _, t := range topics {
		d, ok := details[t]
		switch {
		case !ok:
			fmt.Fprintln(stderr, topicError(t, kerr.UnknownTopicOrPartition, ""))
			failed++
		case d.Err != nil:
			fmt.Fprintln(stderr, topicError(t, d.Err, ""))
			failed++
		default:
			found = append(found, t)
		}
	}
	if len(found) == 0 {
		return topicsFailed(failed, len(topics))
	}

	// Offsets and configs are best effort: a failure is shown in place and
	// the partitions are printed anyway.
	starts, startErr := adm.ListStartOffsets(ctx, found...)
	ends, endErr := adm.ListEndOffsets(ctx, found...)
	configs, configErr := adm.DescribeTopicConfigs(ctx, found...)
	configsUnsupported := unsupported(configErr)

	for i, t := range found {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		d := details[t]
		fmt.Fprintf(stdout, "topic %s\n", t)
		fmt.Fprintf(stdout, "  partitions: %d, replication factor: %d, internal: %t\n",
			len(d.Partitions), d.Partitions.NumReplicas(), d.IsInternal)
		if d.ID != (kadm.TopicID{}) {
			// Kafka's tools print topic ids in URL-safe base64 without padding.
			fmt.Fprintf(stdout, "  id: %s\n", base64.RawURLEncoding.EncodeToString(d.ID[:]))
		}
		printPartitions(stdout, d.Partitions, t, starts, ends)
		if startErr != nil {
			fmt.Fprintf(stdout, "  note: log start offsets unavailable: %v\n", startErr)
		}
		if endErr != nil {
			fmt.Fprintf(stdout, "  note: high watermarks unavailable: %v\n", endErr)
		}

		switch {
		case configsUnsupported:
			fmt.Fprintln(stdout, "  configs: not shown, the broker does not support DescribeConfigs")
		case configErr != nil:
			fmt.Fprintf(stdout, "  configs: unavailable: %v\n", configErr)
		default:
			rc, err := configs.On(t, nil)
			switch {
			case err != nil:
				fmt.Fprintln(stdout, "  configs: missing from the broker's answer")
			case errors.Is(rc.Err, kerr.UnsupportedVersion):
				fmt.Fprintln(stdout, "  configs: not shown, the broker does not support DescribeConfigs")
			case rc.Err != nil:
				fmt.Fprintf(stdout, "  configs: %v\n", topicError(t, rc.Err, rc.ErrMessage))
			default:
				printConfigs(stdout, rc.Configs)
			}
		}
	}
	return topicsFailed(failed, len(topics))
}

func printPartitions(w io.Writer, parts kadm.PartitionDetails, topic string, starts, ends kadm.ListedOffsets) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG-START\tHIGH-WATERMARK\tERROR")
	for _, p := range parts.Sorted() {
		errText := "-"
		if p.Err != nil {
			errText = errCode(p.Err)
		}
		fmt.Fprintf(tw, "  %d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n",
			p.Partition, p.Leader, p.LeaderEpoch, int32List(p.Replicas), int32List(p.ISR),
			listedOffset(starts, topic, p.Partition), listedOffset(ends, topic, p.Partition), errText)
	}
	tw.Flush()
}

func printConfigs(w io.Writer, configs []kadm.Config) {
	if len(configs) == 0 {
		fmt.Fprintln(w, "  configs: none")
		return
	}
	sort.Slice(configs, func(i, j int) bool { return configs[i].Key < configs[j].Key })
	fmt.Fprintln(w, "  configs:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range configs {
		v := c.MaybeValue()
		if c.Sensitive {
			v = "(sensitive)"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\n", c.Key, v, configSource(c.Source))
	}
	tw.Flush()
}

// configSource names where a config value comes from, in words:
// DYNAMIC_TOPIC_CONFIG is "dynamic topic", DEFAULT_CONFIG is "default".
func configSource(s kmsg.ConfigSource) string {
	name := strings.TrimSuffix(s.String(), "_CONFIG")
	return strings.ToLower(strings.ReplaceAll(name, "_", " "))
}

// listedOffset returns the listed offset of a partition as text, or the
// error code, or "-" when it was not listed.
func listedOffset(l kadm.ListedOffsets, topic string, partition int32) string {
	o, ok := l.Lookup(topic, partition)
	switch {
	case !ok:
		return "-"
	case o.Err != nil:
		return errCode(o.Err)
	default:
		return strconv.FormatInt(o.Offset, 10)
	}
}

// int32List formats broker ids as "1,2,3".
func int32List(ids []int32) string {
	if len(ids) == 0 {
		return "-"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// errCode returns the Kafka error code name of err (NOT_LEADER_OR_FOLLOWER),
// or its text if it is not a Kafka error code.
func errCode(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

// unsupported reports whether err means the broker does not serve the
// request: it answered UNSUPPORTED_VERSION, or franz-go did not send the
// request because the broker's ApiVersions does not list it (franz-go does
// not export that error, so it is recognised by its text).
func unsupported(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, kerr.UnsupportedVersion) {
		return true
	}
	return strings.Contains(err.Error(), "broker is too old")
}

func newTopicDeleteCmd(brokers *[]string) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete topics and all their records",
		Example: `  fluxo topic delete telemetry
  fluxo topic delete telemetry alarms`,
		Aliases: []string{"rm"},
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, topics []string) error {
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			return deleteTopics(cmd.Context(), adm, topics, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}

func deleteTopics(ctx context.Context, adm *kadm.Client, topics []string, stdout, stderr io.Writer) error {
	resps, err := adm.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics: %w", err)
	}
	failed := 0
	for _, t := range topics {
		r, ok := resps[t]
		switch {
		case !ok:
			fmt.Fprintln(stderr, topicError(t, errors.New("missing from the broker's answer"), ""))
			failed++
		case r.Err != nil:
			fmt.Fprintln(stderr, topicError(t, r.Err, r.ErrMessage))
			failed++
		default:
			fmt.Fprintf(stdout, "deleted topic %s\n", t)
		}
	}
	return topicsFailed(failed, len(topics))
}
