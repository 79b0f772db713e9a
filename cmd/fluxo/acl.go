package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-io/fluxo/core/acl"
)

func init() { register(newACLCmd) }

func newACLCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "acl",
		Short: "Add, list and delete ACLs",
		Long: `Manage the access control lists of a fluxo core cluster (or of any Kafka
cluster) with Kafka's CreateAcls, DescribeAcls and DeleteAcls. The rules are
Kafka's: a DENY wins over any ALLOW; READ, WRITE, DELETE and ALTER imply
DESCRIBE; a prefixed ACL covers every resource whose name starts with it; the
literal name "*" covers every resource of its type. The brokers must run with
an authorizer, else they answer SECURITY_DISABLED.`,
		Example: `  fluxo acl add --principal User:alice --operation read,describe --topic telemetry
  fluxo acl add --principal User:alice --operation read --group billing- --prefixed
  fluxo acl add --principal User:bob --operation all --topic '*' --deny --host 10.0.0.7
  fluxo acl list --principal User:alice
  fluxo acl list --topic telemetry --pattern match
  fluxo acl delete --principal User:bob`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	brokers := brokersFlag(c)
	c.AddCommand(newACLAddCmd(brokers), newACLListCmd(brokers), newACLDeleteCmd(brokers))
	return c
}

// aclFlags are the flags that name ACLs, for adding or as a filter.
type aclFlags struct {
	principals []string
	hosts      []string
	operations []string
	topics     []string
	groups     []string
	txnIDs     []string
	cluster    bool
	prefixed   bool
	deny       bool
	// For list and delete only.
	pattern    string
	permission string
}

// resources adds the resource flags to f.
func (a *aclFlags) resources(f interface {
	StringArrayVar(*[]string, string, []string, string)
	BoolVar(*bool, string, bool, string)
}) {
	f.StringArrayVar(&a.topics, "topic", nil, "topic name (repeatable; '*' is every topic)")
	f.StringArrayVar(&a.groups, "group", nil, "consumer group id (repeatable; '*' is every group)")
	f.StringArrayVar(&a.txnIDs, "transactional-id", nil, "transactional id (repeatable; '*' is every one)")
	f.BoolVar(&a.cluster, "cluster", false, "the cluster resource")
}

func (a *aclFlags) hasResource() bool {
	return len(a.topics)+len(a.groups)+len(a.txnIDs) > 0 || a.cluster
}

// parseOperations parses --operation values (read, write, describe_configs,
// all...; any case, "-" or "_" as you like). any is allowed only when
// filtering.
func parseOperations(values []string, filter bool) ([]kadm.ACLOperation, error) {
	var out []kadm.ACLOperation
	for _, v := range values {
		op, err := kmsg.ParseACLOperation(strings.TrimSpace(v))
		if err != nil || op == kmsg.ACLOperationUnknown || (op == kmsg.ACLOperationAny && !filter) {
			return nil, fmt.Errorf("--operation: got %q, want one of read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write, all", v)
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, nil
}

// builder returns the ACLs a names: for adding (filter false) or as a
// filter for list and delete.
func (a *aclFlags) builder(filter bool) (*kadm.ACLBuilder, error) {
	ops, err := parseOperations(a.operations, filter)
	if err != nil {
		return nil, err
	}
	for _, p := range a.principals {
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return nil, fmt.Errorf("--principal: got %q, want Type:name, as User:alice", p)
		}
	}
	b := kadm.NewACLs()
	if filter && !a.hasResource() {
		b.AnyResource()
	}
	if len(a.topics) > 0 {
		b.Topics(a.topics...)
	}
	if len(a.groups) > 0 {
		b.Groups(a.groups...)
	}
	if len(a.txnIDs) > 0 {
		b.TransactionalIDs(a.txnIDs...)
	}
	if a.cluster {
		b.Clusters()
	}
	b.Operations(ops...)
	if !filter {
		pattern := kadm.ACLPatternLiteral
		if a.prefixed {
			pattern = kadm.ACLPatternPrefixed
		}
		b.ResourcePatternType(pattern)
		hosts := a.hosts
		if len(hosts) == 0 {
			hosts = []string{acl.WildcardHost}
		}
		if a.deny {
			b.Deny(a.principals...).DenyHosts(hosts...)
		} else {
			b.Allow(a.principals...).AllowHosts(hosts...)
		}
		return b, nil
	}
	pattern, err := kmsg.ParseACLResourcePatternType(a.pattern)
	if err != nil || pattern == kmsg.ACLResourcePatternTypeUnknown {
		return nil, fmt.Errorf("--pattern: got %q, want any, match, literal or prefixed", a.pattern)
	}
	b.ResourcePatternType(pattern)
	switch strings.ToLower(a.permission) {
	case "any":
		b.Allow(a.principals...).AllowHosts(a.hosts...).Deny(a.principals...).DenyHosts(a.hosts...)
	case "allow":
		b.Allow(a.principals...).AllowHosts(a.hosts...)
	case "deny":
		b.Deny(a.principals...).DenyHosts(a.hosts...)
	default:
		return nil, fmt.Errorf("--permission: got %q, want any, allow or deny", a.permission)
	}
	return b, nil
}

// binding is a described, created or deleted ACL in core/acl's form, for
// printing.
func binding(typ kmsg.ACLResourceType, name string, pattern kadm.ACLPattern, principal, host string, op kadm.ACLOperation, perm kmsg.ACLPermissionType) acl.Binding {
	return acl.Binding{ResourceType: typ, ResourceName: name, PatternType: pattern, Principal: principal, Host: host, Operation: op, Permission: perm}
}

func newACLAddCmd(brokers *[]string) *cobra.Command {
	var a aclFlags
	c := &cobra.Command{
		Use:   "add",
		Short: "Allow (or with --deny, deny) operations on resources to principals",
		Long: `Add one ACL per principal, host, operation and resource given. Without
--host the ACL applies from every host; without --prefixed the resource name
is literal.`,
		Example: `  fluxo acl add --principal User:alice --operation read,describe --topic telemetry
  fluxo acl add --principal User:alice --operation read --group billing- --prefixed
  fluxo acl add --principal User:ingest --operation write,idempotent_write --topic telemetry --cluster
  fluxo acl add --principal User:bob --operation all --topic '*' --deny --host 10.0.0.7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case len(a.principals) == 0:
				return errors.New("--principal: required, as User:alice")
			case len(a.operations) == 0:
				return errors.New("--operation: required, as read or read,write")
			case !a.hasResource():
				return errors.New("no resource: give --topic, --group, --transactional-id or --cluster")
			}
			b, err := a.builder(false)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			rs, err := adm.CreateACLs(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("add acls: %w", err)
			}
			failed := 0
			for _, r := range rs {
				bd := binding(r.Type, r.Name, r.Pattern, r.Principal, r.Host, r.Operation, r.Permission)
				if r.Err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), brokerError("acl "+bd.String(), r.Err, r.ErrMessage))
					failed++
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added acl %s\n", bd)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d acls failed", failed, len(rs))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringSliceVar(&a.principals, "principal", nil, "principal, as User:alice (repeatable)")
	f.StringSliceVar(&a.hosts, "host", nil, "client IP address the ACL applies from (default *, every host)")
	f.StringSliceVar(&a.operations, "operation", nil, "operations: read, write, create, delete, alter, describe, cluster_action, describe_configs, alter_configs, idempotent_write, all")
	a.resources(f)
	f.BoolVar(&a.prefixed, "prefixed", false, "the resource names are prefixes")
	f.BoolVar(&a.deny, "deny", false, "deny instead of allow")
	return c
}

// filterFlags adds the filter flags of list and delete.
func (a *aclFlags) filterFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringSliceVar(&a.principals, "principal", nil, "only ACLs of these principals (default any)")
	f.StringSliceVar(&a.hosts, "host", nil, "only ACLs for these hosts (default any)")
	f.StringSliceVar(&a.operations, "operation", nil, "only ACLs of these operations (default any)")
	a.resources(f)
	f.StringVar(&a.pattern, "pattern", "any", "how resource names match: any (the name as given, any pattern type), literal, prefixed, or match (every ACL that applies to the named resource)")
	f.StringVar(&a.permission, "permission", "any", "only ALLOW or DENY ACLs: any, allow, deny")
}

func newACLListCmd(brokers *[]string) *cobra.Command {
	var a aclFlags
	c := &cobra.Command{
		Use:   "list",
		Short: "List ACLs, all or those matching filters",
		Example: `  fluxo acl list
  fluxo acl list --principal User:alice
  fluxo acl list --topic telemetry --pattern match
  fluxo acl list --permission deny`,
		Aliases: []string{"ls"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := a.builder(true)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			rs, err := adm.DescribeACLs(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("list acls: %w", err)
			}
			var all []acl.Binding
			for _, r := range rs {
				if r.Err != nil {
					return brokerError("list acls", r.Err, r.ErrMessage)
				}
				for _, d := range r.Described {
					all = append(all, binding(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission))
				}
			}
			return printACLs(cmd.OutOrStdout(), all)
		},
	}
	a.filterFlags(c)
	return c
}

// printACLs prints bindings as a table, sorted by resource, then
// principal, without duplicates.
func printACLs(w io.Writer, bs []acl.Binding) error {
	slices.SortFunc(bs, func(a, b acl.Binding) int {
		return strings.Compare(aclSortKey(a), aclSortKey(b))
	})
	bs = slices.Compact(bs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tPATTERN\tNAME\tPRINCIPAL\tHOST\tOPERATION\tPERMISSION")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ResourceType, b.PatternType, b.ResourceName, b.Principal, b.Host, b.Operation, b.Permission)
	}
	return tw.Flush()
}

func aclSortKey(b acl.Binding) string {
	return fmt.Sprintf("%02d\x00%s\x00%02d\x00%s\x00%s\x00%02d\x00%02d", b.ResourceType, b.ResourceName, b.PatternType, b.Principal, b.Host, b.Operation, b.Permission)
}

func newACLDeleteCmd(brokers *[]string) *cobra.Command {
	var (
		a   aclFlags
		all bool
	)
	c := &cobra.Command{
		Use:   "delete",
		Short: "Delete the ACLs matching filters, printing each one deleted",
		Long: `Delete every ACL matching the filters (as fluxo acl list selects them)
and print what was deleted. At least one filter is required; --all deletes
every ACL.`,
		Example: `  fluxo acl delete --principal User:bob
  fluxo acl delete --topic telemetry --pattern literal --operation write
  fluxo acl delete --all`,
		Aliases: []string{"rm"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filtered := len(a.principals)+len(a.hosts)+len(a.operations) > 0 || a.hasResource() ||
				cmd.Flags().Changed("pattern") || cmd.Flags().Changed("permission")
			if !filtered && !all {
				return errors.New("no filter: give --principal, --topic, ... or --all to delete every acl")
			}
			b, err := a.builder(true)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			rs, err := adm.DeleteACLs(cmd.Context(), b)
			if err != nil {
				return fmt.Errorf("delete acls: %w", err)
			}
			var errs []error
			n := 0
			for _, r := range rs {
				if r.Err != nil {
					errs = append(errs, brokerError("delete acls", r.Err, r.ErrMessage))
					continue
				}
				for _, d := range r.Deleted {
					bd := binding(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission)
					if d.Err != nil {
						errs = append(errs, brokerError("acl "+bd.String(), d.Err, d.ErrMessage))
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "deleted acl %s\n", bd)
					n++
				}
			}
			if n == 0 && len(errs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no acl matched")
			}
			return errors.Join(errs...)
		},
	}
	a.filterFlags(c)
	c.Flags().BoolVar(&all, "all", false, "delete every acl")
	return c
}
