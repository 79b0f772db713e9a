package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

// userPasswordEnv holds the password of fluxo user add when no
// --password-file is given. A password is never a flag: command lines show
// in ps and shell histories.
const userPasswordEnv = "FLUXO_USER_PASSWORD"

func init() {
	register(newUserCmd)
	commandEnv[userPasswordEnv] = true
}

func newUserCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "user",
		Short: "Add, list and delete SCRAM users",
		Long: `Manage the SCRAM users of a fluxo core cluster (or of any Kafka cluster) with
Kafka's AlterUserScramCredentials and DescribeUserScramCredentials. The
password is salted here; the cluster keeps only RFC 5802's stored and server
keys. Clients then authenticate with SASL SCRAM-SHA-256 or SCRAM-SHA-512.`,
		Example: `  fluxo user add alice --password-file /run/secrets/alice
  FLUXO_USER_PASSWORD=s3cret fluxo user add bob --mechanism both --iterations 8192
  fluxo user list
  fluxo user delete alice`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	brokers := brokersFlag(c)
	c.AddCommand(newUserAddCmd(brokers), newUserListCmd(brokers), newUserDeleteCmd(brokers))
	return c
}

// parseMechanisms turns --mechanism values (SCRAM-SHA-256, SCRAM-SHA-512,
// both; any case) into kadm mechanisms, without duplicates.
func parseMechanisms(values []string) ([]kadm.ScramMechanism, error) {
	var out []kadm.ScramMechanism
	add := func(m kadm.ScramMechanism) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, v := range values {
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "SCRAM-SHA-256":
			add(kadm.ScramSha256)
		case "SCRAM-SHA-512":
			add(kadm.ScramSha512)
		case "BOTH":
			add(kadm.ScramSha256)
			add(kadm.ScramSha512)
		default:
			return nil, fmt.Errorf("--mechanism: got %q, want SCRAM-SHA-256, SCRAM-SHA-512 or both", v)
		}
	}
	return out, nil
}

// readUserPassword returns the password from file (its first line), else from
// FLUXO_USER_PASSWORD.
func readUserPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ := strings.Cut(string(b), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return "", fmt.Errorf("--password-file: %s: got an empty password, want one on the first line", file)
		}
		return pw, nil
	}
	if pw := os.Getenv(userPasswordEnv); pw != "" {
		return pw, nil
	}
	return "", fmt.Errorf("no password: give --password-file or set %s", userPasswordEnv)
}

func newUserAddCmd(brokers *[]string) *cobra.Command {
	var (
		mechanisms   []string
		iterations   int32
		passwordFile string
	)
	c := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a SCRAM user, or change its password",
		Long: `Add a SCRAM user or replace its credential for the given mechanism(s).
The password comes from the first line of --password-file, else from the
environment variable ` + userPasswordEnv + `; never from the command line.`,
		Example: `  fluxo user add alice --password-file /run/secrets/alice
  fluxo user add alice --mechanism SCRAM-SHA-256 --iterations 16384 --password-file pw.txt
  FLUXO_USER_PASSWORD=s3cret fluxo user add bob --mechanism both`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			mechs, err := parseMechanisms(mechanisms)
			if err != nil {
				return err
			}
			if iterations < 4096 || iterations > 16384 {
				return fmt.Errorf("--iterations: got %d, want 4096 to 16384", iterations)
			}
			password, err := readUserPassword(passwordFile)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			// One request per mechanism: Kafka refuses a user named twice in
			// one request (DUPLICATE_RESOURCE).
			for _, m := range mechs {
				up := kadm.UpsertSCRAM{User: user, Mechanism: m, Iterations: iterations, Password: password}
				res, err := adm.AlterUserSCRAMs(cmd.Context(), nil, []kadm.UpsertSCRAM{up})
				if err != nil {
					return fmt.Errorf("add user %s: %w", user, err)
				}
				if r := res[user]; r.Err != nil {
					return brokerError("user "+user, r.Err, r.ErrMessage)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added user %s (%s, %d iterations)\n", user, m, iterations)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringSliceVar(&mechanisms, "mechanism", []string{"SCRAM-SHA-512"}, "SCRAM-SHA-256, SCRAM-SHA-512 or both (repeatable)")
	f.Int32Var(&iterations, "iterations", 8192, "PBKDF2 iterations, 4096 to 16384")
	f.StringVar(&passwordFile, "password-file", "", "file whose first line is the password (else $"+userPasswordEnv+")")
	return c
}

func newUserListCmd(brokers *[]string) *cobra.Command {
	return &cobra.Command{
		Use:   "list [NAME...]",
		Short: "List SCRAM users with their mechanisms and iterations",
		Example: `  fluxo user list
  fluxo user list alice bob`,
		Aliases: []string{"ls"},
		RunE: func(cmd *cobra.Command, users []string) error {
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			described, err := adm.DescribeUserSCRAMs(cmd.Context(), users...)
			if err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			return printUsers(cmd.OutOrStdout(), cmd.ErrOrStderr(), described)
		},
	}
}

func printUsers(stdout, stderr io.Writer, described kadm.DescribedUserSCRAMs) error {
	names := make([]string, 0, len(described))
	for n := range described {
		names = append(names, n)
	}
	slices.Sort(names)
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tMECHANISM\tITERATIONS")
	failed := 0
	for _, n := range names {
		d := described[n]
		if d.Err != nil {
			fmt.Fprintln(stderr, brokerError("user "+n, d.Err, d.ErrMessage))
			failed++
			continue
		}
		infos := slices.Clone(d.CredInfos)
		slices.SortFunc(infos, func(a, b kadm.CredInfo) int { return int(a.Mechanism) - int(b.Mechanism) })
		for _, ci := range infos {
			fmt.Fprintf(w, "%s\t%s\t%d\n", n, ci.Mechanism, ci.Iterations)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s failed", plural(failed, "user"))
	}
	return nil
}

func newUserDeleteCmd(brokers *[]string) *cobra.Command {
	var mechanisms []string
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a SCRAM user's credentials",
		Long: `Delete the user's credential for each --mechanism, or all its credentials
when none is given. A user without credentials no longer exists.`,
		Example: `  fluxo user delete alice
  fluxo user delete alice --mechanism SCRAM-SHA-256`,
		Aliases: []string{"rm"},
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			mechs, err := parseMechanisms(mechanisms)
			if err != nil {
				return err
			}
			adm, cl, err := newAdmin(cmd, *brokers)
			if err != nil {
				return err
			}
			defer cl.Close()
			if len(mechs) == 0 {
				mechs, err = userMechanisms(cmd.Context(), adm, user)
				if err != nil {
					return err
				}
			}
			for _, m := range mechs {
				res, err := adm.AlterUserSCRAMs(cmd.Context(), []kadm.DeleteSCRAM{{User: user, Mechanism: m}}, nil)
				if err != nil {
					return fmt.Errorf("delete user %s: %w", user, err)
				}
				if r := res[user]; r.Err != nil {
					return brokerError("user "+user, r.Err, r.ErrMessage)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s (%s)\n", user, m)
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&mechanisms, "mechanism", nil, "SCRAM-SHA-256, SCRAM-SHA-512 or both (default: every mechanism the user has)")
	return c
}

// userMechanisms returns the mechanisms user has credentials for.
func userMechanisms(ctx context.Context, adm *kadm.Client, user string) ([]kadm.ScramMechanism, error) {
	described, err := adm.DescribeUserSCRAMs(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("describe user %s: %w", user, err)
	}
	d, ok := described[user]
	switch {
	case !ok:
		return nil, fmt.Errorf("user %s: missing from the broker's answer", user)
	case d.Err != nil:
		return nil, brokerError("user "+user, d.Err, d.ErrMessage)
	}
	var out []kadm.ScramMechanism
	for _, ci := range d.CredInfos {
		out = append(out, ci.Mechanism)
	}
	return out, nil
}
