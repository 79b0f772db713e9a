package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/fluxo-io/fluxo/devices"
)

func init() { register(newDevicesCmd) }

func newDevicesCmd() *cobra.Command {
	cfg := devices.DefaultConfig()
	var qos uint8
	c := &cobra.Command{
		Use:   "devices",
		Short: "Simulate sensors, cars and alarm panels publishing over MQTT",
		Long: `Simulate a fleet of IoT devices, each with its own MQTT connection, publishing
JSON to a broker (a fluxo edge, or any MQTT 3.1.1 server) on
{fleet}/{device}/{stream}:

  sensors/s-0001/telemetry         temperature, humidity, battery
  cars/c-0001/telemetry            GPS position, speed, fuel, engine temperature
  panels/p-0001/status             alarm panel heartbeat
  +/+/alarm/#                      battery-low, engine-overheat, intrusion alarms

Every message carries the device id, a per-device "seq" from 1 and the send
time "ts_ms" (Unix milliseconds). Each device answers the commands it gets on
{fleet}/{device}/cmd with a reply on {fleet}/{device}/cmd/reply that echoes
the command's "id" as "cmd_id". Devices reconnect on their own, with
exponential backoff, when the broker goes away.

On a terminal a status line shows progress; a summary is printed at the end,
after --duration or on Ctrl-C. The command fails if no device could connect.`,
		Example: `  # ten sensors and five cars, one message a second each, until Ctrl-C
  fluxo devices --broker tcp://127.0.0.1:1883 --sensors 10 --cars 5

  # a load test: 1,000 devices at 10 messages a second for five minutes
  fluxo devices --broker tcp://edge.local:1883 --sensors 600 --cars 300 --panels 100 \
      --rate 10 --duration 5m --qos 1

  # plenty of alarms, for a dashboard
  fluxo devices --panels 50 --alarm-rate 5

  # over TLS with a user (the password may come from FLUXO_PASSWORD)
  FLUXO_PASSWORD=secret fluxo devices --broker ssl://edge.local:8883 --username fleet`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.QoS = qos
			cfg.Logger = logger(cmd)
			return runDevices(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Broker, "broker", cfg.Broker, "MQTT server: tcp://HOST:PORT, ssl://HOST:PORT, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH")
	f.IntVar(&cfg.Sensors, "sensors", cfg.Sensors, "number of temperature sensors (s-0001, …)")
	f.IntVar(&cfg.Cars, "cars", cfg.Cars, "number of cars (c-0001, …)")
	f.IntVar(&cfg.Panels, "panels", cfg.Panels, "number of alarm panels (p-0001, …)")
	f.Float64Var(&cfg.Rate, "rate", cfg.Rate, "telemetry messages per second per sensor and per car (0.5: one every two seconds)")
	f.Float64Var(&cfg.PanelRate, "panel-rate", cfg.PanelRate, "status heartbeats per second per alarm panel")
	f.Float64Var(&cfg.AlarmRate, "alarm-rate", cfg.AlarmRate, "alarms per second over the whole fleet, roughly (0: only the sensors' own battery-low alarms)")
	f.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to publish once connected, e.g. 30s or 5m (0: until Ctrl-C)")
	f.Uint8Var(&qos, "qos", cfg.QoS, "MQTT QoS of telemetry, status and alarms: 0, 1 or 2")
	f.StringVar(&cfg.Username, "username", cfg.Username, "MQTT user name of every device")
	f.StringVar(&cfg.Password, "password", cfg.Password, "MQTT password of every device (better: FLUXO_PASSWORD)")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the simulated readings (0: a random one, shown in the summary)")
	f.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "how long to wait for the fleet to connect")
	f.DurationVar(&cfg.MaxReconnectInterval, "max-reconnect-interval", cfg.MaxReconnectInterval, "longest wait between two attempts to reconnect")
	return c
}

// runDevices runs the fleet cfg describes and writes its progress and
// summary to out.
func runDevices(ctx context.Context, cfg devices.Config, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	until := "until Ctrl-C"
	if cfg.Duration > 0 {
		until = "for " + cfg.Duration.String()
	}
	fmt.Fprintf(out, "fluxo devices: %s, %s and %s publishing to %s at QoS %d %s\n",
		fleetSize(cfg.Sensors, "sensor"), fleetSize(cfg.Cars, "car"), fleetSize(cfg.Panels, "panel"), cfg.Broker, cfg.QoS, until)

	var observe devices.Observer
	live := isTerminal(out)
	if live {
		var prev devices.Stats
		observe = func(st devices.Stats) {
			fmt.Fprintf(out, "\r%s\x1b[K", statusLine(st, prev))
			prev = st
		}
	}
	st, err := devices.Run(ctx, cfg, observe)
	if live {
		fmt.Fprint(out, "\r\x1b[K")
	}
	if err != nil && !errors.Is(err, devices.ErrNoConnection) {
		return err
	}
	printDevicesSummary(out, cfg, st)
	return err
}

// statusLine is the one-line progress of a fleet; prev is the previous
// snapshot, for the current rate.
func statusLine(st, prev devices.Stats) string {
	if st.Elapsed == 0 {
		return fmt.Sprintf("connecting: %d of %d devices", st.Connected, st.Devices)
	}
	var rate float64
	if dt := (st.Elapsed - prev.Elapsed).Seconds(); dt > 0 {
		rate = float64(st.Sent-prev.Sent) / dt
	}
	return fmt.Sprintf("%s  online %d/%d  sent %d  acked %d  %.0f msg/s  alarms %d  errors %d  dropped %d  reconnects %d",
		st.Elapsed.Round(time.Second), st.Online, st.Devices, st.Sent, st.Acked, rate,
		st.Alarms, st.Errors, st.Dropped, st.Reconnects)
}

// printDevicesSummary writes the final figures of a run.
func printDevicesSummary(out io.Writer, cfg devices.Config, st devices.Stats) {
	var rate float64
	if s := st.Elapsed.Seconds(); s > 0 {
		rate = float64(st.Sent) / s
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "devices\t%d (%d connected), seed %d\n", st.Devices, st.Connected, st.Seed)
	fmt.Fprintf(tw, "published for\t%s\n", st.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "sent\t%d (%.1f msg/s)\n", st.Sent, rate)
	fmt.Fprintf(tw, "acknowledged\t%d\n", st.Acked)
	fmt.Fprintf(tw, "unacknowledged\t%d\n", st.Unacked())
	fmt.Fprintf(tw, "errors\t%d\n", st.Errors)
	fmt.Fprintf(tw, "dropped\t%d\n", st.Dropped)
	fmt.Fprintf(tw, "alarms\t%d\n", st.Alarms)
	fmt.Fprintf(tw, "commands answered\t%d\n", st.Commands)
	fmt.Fprintf(tw, "reconnects\t%d\n", st.Reconnects)
	tw.Flush()

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "fleet\tdevices\tsent\tacked\terrors\tdropped\talarms\tcommands\n")
	counts := [...]int{devices.Sensor: cfg.Sensors, devices.Car: cfg.Cars, devices.Panel: cfg.Panels}
	for _, k := range devices.Kinds {
		c := st.ByKind[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", k.Fleet(), counts[k], c.Sent, c.Acked, c.Errors, c.Dropped, c.Alarms, c.Commands)
	}
	tw.Flush()
}

// fleetSize returns "1 car" or "2 cars".
func fleetSize(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
