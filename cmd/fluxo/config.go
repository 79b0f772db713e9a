package main

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Configuration sources, strongest first:
//
//  1. the command line (--data-dir /srv/fluxo),
//  2. the environment (FLUXO_DATA_DIR=/srv/fluxo),
//  3. the YAML file named by --config or FLUXO_CONFIG, where the most specific
//     section wins: for "fluxo topic create", key topic.create.partitions,
//     then topic.partitions, then partitions,
//  4. the flag's default.
//
// Values from the environment and the file go through the flag's own
// pflag.Value.Set, so they parse exactly as on the command line; a YAML list
// fills a slice flag through pflag.SliceValue.Replace.
//
// Keys in the file are checked against the whole command tree, not only the
// running command, so one file can serve "fluxo core" and "fluxo edge": a
// top-level key must be a flag of some command, a key in a section must be a
// flag of that subcommand, of one of its subcommands, or inherited by it.
// Anything else is an error naming the key.

const (
	envPrefix  = "FLUXO_"
	configFlag = "config"
	helpFlag   = "help"
)

// commandEnv are FLUXO_ variables a command reads itself, secrets that
// must not be flags (FLUXO_USER_PASSWORD); applyConfig does not warn about
// them.
var commandEnv = map[string]bool{}

// envOnly are the FLUXO_ variables read directly rather than through a
// flag: the passwords that must not be flags (see clientsec.go).
var envOnly = []string{saslPasswordEnv, coreSASLPasswordEnv}

// envName returns the environment variable that sets the flag named flag:
// data-dir is FLUXO_DATA_DIR.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyConfig sets every flag of cmd not given on the command line from its
// FLUXO_ environment variable, else from the --config file, and marks it
// changed. It returns the FLUXO_ variables that match no flag of any command,
// for the caller to warn about once the logger exists.
func applyConfig(cmd *cobra.Command) (unknownEnv []string, err error) {
	if isBuiltin(cmd) {
		return nil, nil
	}
	flags := cmd.Flags()
	onLine := make(map[string]bool)
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			onLine[f.Name] = true
		}
	})

	// Environment.
	ke := koanf.New(".")
	if err := ke.Load(env.Provider("", env.Opt{Prefix: envPrefix}), nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	known := make(map[string]bool)
	for name := range flagsFor(cmd.Root()) {
		known[envName(name)] = true
	}
	for _, name := range envOnly {
		known[name] = true
	}
	for _, name := range ke.Keys() {
		if !known[name] && !commandEnv[name] {
			unknownEnv = append(unknownEnv, name)
		}
	}
	fromEnv := make(map[string]bool)
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		name := envName(f.Name)
		if f.Name == helpFlag || onLine[f.Name] || !ke.Exists(name) {
			return
		}
		v := ke.String(name)
		if err := setFlag(flags, f, v); err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%q: invalid value for --%s: %w", name, v, f.Name, err))
			return
		}
		fromEnv[f.Name] = true
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// File.
	cf := flags.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return unknownEnv, nil
	}
	path := cf.Value.String()
	values, err := readConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if err := checkKeys(cmd.Root(), values); err != nil {
		return nil, prefixErrors("config: "+path+": ", err)
	}
	sections := commandPath(cmd)
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name == helpFlag || f.Name == configFlag || onLine[f.Name] || fromEnv[f.Name] {
			return
		}
		for i := len(sections); i >= 0; i-- {
			key := strings.Join(append(slices.Clone(sections[:i]), f.Name), ".")
			v, ok := values[key]
			if !ok {
				continue
			}
			if err := setFlag(flags, f, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %s: invalid value %s for --%s: %w", path, key, show(v), f.Name, err))
			}
			return
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return unknownEnv, nil
}

// readConfigFile parses the YAML file at path into flattened keys
// ("core.data-dir") and their values as the YAML decoder returned them.
func readConfigFile(path string) (map[string]any, error) {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err // the path is already in the caller's prefix
		}
		return nil, err
	}
	values := make(map[string]any)
	for _, key := range k.Keys() {
		values[key] = k.Get(key)
	}
	return values, nil
}

// checkKeys returns an error for every key of a config file that no command
// of the tree under root can use.
func checkKeys(root *cobra.Command, values map[string]any) error {
	keys := make([]string, 0, len(values))
	for key := range values {
		keys = append(keys, key)
	}
	slices.Sort(keys)

	var errs []error
	for _, key := range keys {
		parts := strings.Split(key, ".")
		name := parts[len(parts)-1]
		c := root
		for _, section := range parts[:len(parts)-1] {
			sub := subcommand(c, section)
			if sub == nil {
				errs = append(errs, fmt.Errorf("unknown key %s: %q is not a subcommand of %s", key, section, c.CommandPath()))
				c = nil
				break
			}
			c = sub
		}
		switch {
		case c == nil:
		case isEmptySection(values[key]) && subcommand(c, name) != nil:
		case name == configFlag:
			errs = append(errs, fmt.Errorf("%s: the config file cannot name another config file", key))
		case !flagsFor(c)[name]:
			errs = append(errs, fmt.Errorf("unknown key %s: no flag --%s in %s or its subcommands", key, name, c.CommandPath()))
		}
	}
	return errors.Join(errs...)
}

func isEmptySection(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// setFlag sets f, a flag of flags, from a value of the environment (a string)
// or of the YAML file, with the flag's own parser.
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return errors.New("got a list, want a single value")
		}
		items := make([]string, len(list))
		for i, item := range list {
			s, err := scalar(item)
			if err != nil {
				return err
			}
			items[i] = s
		}
		if err := sv.Replace(items); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	s, err := scalar(v)
	if err != nil {
		return err
	}
	if err := flags.Set(f.Name, s); err != nil {
		if ive := (*pflag.InvalidValueError)(nil); errors.As(err, &ive) {
			return ive.Unwrap() // the caller names the flag and the value
		}
		return err
	}
	return nil
}

// scalar returns the text of a single YAML value, as it would be typed on the
// command line.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case map[string]any:
		return "", errors.New("got a mapping, want a value")
	case []any:
		return "", errors.New("got a nested list, want a value")
	default:
		return fmt.Sprint(v), nil
	}
}

// show formats a YAML value for an error message.
func show(v any) string {
	if s, err := scalar(v); err == nil {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// flagsFor returns the names of the flags that c, its subcommands and their
// subcommands accept, including those inherited from c's ancestors.
func flagsFor(c *cobra.Command) map[string]bool {
	names := make(map[string]bool)
	add := func(f *pflag.Flag) {
		if f.Name != helpFlag {
			names[f.Name] = true
		}
	}
	for p := c.Parent(); p != nil; p = p.Parent() {
		p.PersistentFlags().VisitAll(add)
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
	return names
}

// subcommand returns the direct subcommand of c called name, or nil.
func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == name || sub.HasAlias(name) {
			return sub
		}
	}
	return nil
}

// commandPath returns the names of cmd and its ancestors below the root,
// outermost first: ["topic", "create"] for "fluxo topic create".
func commandPath(cmd *cobra.Command) []string {
	var path []string
	for c := cmd; c.HasParent(); c = c.Parent() {
		path = append([]string{c.Name()}, path...)
	}
	return path
}

// isBuiltin reports whether cmd is one of cobra's own commands (help, shell
// completion), which need no configuration.
func isBuiltin(cmd *cobra.Command) bool {
	path := commandPath(cmd)
	if len(path) == 0 {
		return false
	}
	switch path[0] {
	case "help", "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		return true
	}
	return false
}

// prefixErrors prefixes each error joined in err with prefix.
func prefixErrors(prefix string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for i, e := range list {
		list[i] = fmt.Errorf("%s%w", prefix, e)
	}
	return errors.Join(list...)
}
