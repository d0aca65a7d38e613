package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// usageError is a bad flag or setting: the process exits 2 and names it.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globals are the settings every subcommand shares.
type globals struct {
	logLevel  string
	logFormat string
	log       *zap.Logger
}

func newRootCommand() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "clickfleet",
		Short:         "A clickstream pipeline around a KCL-style consumer fleet on the actor model",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			log, err := newLogger(g.logLevel, g.logFormat)
			if err != nil {
				return err
			}
			g.log = log
			return nil
		},
		PersistentPostRun: func(*cobra.Command, []string) {
			if g.log != nil {
				_ = g.log.Sync()
			}
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "auto", "log format: json, console, or auto (console on a terminal, JSON otherwise)")
	root.AddCommand(newHealthcheckCommand(g))
	root.AddCommand(newSetupCommand(g), newGenCommand(g), newTailCommand(g), newConsumeCommand(g), newIngestCommand(g), newBenchCommand(g), newNamesSyncCommand(g), newSessionsCommand(g), newArchiveCommand(g))
	root.AddCommand(newCatalogCommand(g), newReportCommand(g), newReconcileCommand(g), newDashboardCommand(g))
	root.AddCommand(newScaleCommand(g))
	documentEnv(root)
	return root
}

// envName is the environment variable that sets a flag: CLICKFLEET_ and the flag's name in upper case
// with dashes as underscores (--redis-url → CLICKFLEET_REDIS_URL).
func envName(flag string) string {
	return "CLICKFLEET_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag of cmd (its own and inherited) that was not given on the command line from its
// environment variable, when that is set. A bad value names the variable and the flag.
func applyEnv(cmd *cobra.Command) error {
	var first error
	visit := func(f *pflag.Flag) {
		if first != nil || f.Changed || f.Name == "help" {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if err := f.Value.Set(v); err != nil {
			first = usagef("%s=%q (flag --%s): %v", envName(f.Name), v, f.Name, err)
			return
		}
		f.Changed = true
	}
	cmd.InheritedFlags().VisitAll(visit)
	cmd.LocalFlags().VisitAll(visit)
	return first
}

// documentEnv appends each flag's environment variable to its help text, in every command.
func documentEnv(cmd *cobra.Command) {
	add := func(f *pflag.Flag) {
		if f.Name != "help" && !strings.Contains(f.Usage, "(env ") {
			f.Usage += " (env " + envName(f.Name) + ")"
		}
	}
	cmd.LocalNonPersistentFlags().VisitAll(add)
	cmd.PersistentFlags().VisitAll(add)
	for _, c := range cmd.Commands() {
		documentEnv(c)
	}
}

func newLogger(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, usagef("--log-level (CLICKFLEET_LOG_LEVEL): %v", err)
	}
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
	case "auto":
		if term.IsTerminal(int(os.Stderr.Fd())) {
			cfg = zap.NewDevelopmentConfig()
		} else {
			cfg = zap.NewProductionConfig()
		}
	default:
		return nil, usagef("--log-format (CLICKFLEET_LOG_FORMAT) must be json, console or auto, not %q", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.DisableStacktrace = lvl > zapcore.DebugLevel
	cfg.Sampling = nil
	return cfg.Build()
}

// loadAWS reads the SDK's own configuration: region, credentials and endpoints (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB …), so the same binary runs against the local
// stack, LocalStack and AWS.
func loadAWS(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return cfg, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, usagef("no AWS region: set AWS_REGION (for the local stack any region, e.g. us-east-1)")
	}
	if err := recordCalls(&cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// redisPasswordEnv names the environment variable that gives the Redis password (AUTH, or an ACL user's
// with the user in the URL) when --redis-url carries none: redis-cli's own, as PGPASSWORD is for
// PostgreSQL, so that a secret injected into the environment stays out of the URL and the command line.
const redisPasswordEnv = "REDISCLI_AUTH"

// newRedis returns a client for a --redis-url value; a bad URL is a usage error naming the flag. The
// password is the URL's, else REDISCLI_AUTH's.
func newRedis(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, usagef("--redis-url (CLICKFLEET_REDIS_URL) %q: %v", url, err)
	}
	if opts.Password == "" {
		opts.Password = os.Getenv(redisPasswordEnv)
	}
	return redis.NewClient(opts), nil
}
