package main

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// The compose file runs clickfleet subcommands that exist, with flags and CLICKFLEET_* variables they know.
func TestComposeFileMatchesTheCLI(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	// The archive runs against LocalStack's S3, in the bucket setup creates.
	if a := compose.Services["archive"]; len(a.Command) == 0 || a.Command[0] != "archive" || a.Environment["CLICKFLEET_LAKE_URL"] == "" {
		t.Errorf("no archive service running 'clickfleet archive' with CLICKFLEET_LAKE_URL: %+v", a)
	}
	// The dashboard publishes its port, and since it listens on every interface of its container it has a token.
	if d := compose.Services["dashboard"]; len(d.Command) == 0 || d.Command[0] != "dashboard" || !slices.Contains(d.Command, "0.0.0.0:8088") ||
		!slices.Contains(d.Ports, "127.0.0.1:8088:8088") || len(d.Environment["CLICKFLEET_TOKEN"]) < 16 || d.Environment["CLICKFLEET_LAKE_URL"] != compose.Services["archive"].Environment["CLICKFLEET_LAKE_URL"] {
		t.Errorf("no dashboard service running 'clickfleet dashboard' on 0.0.0.0:8088, published on 127.0.0.1:8088, with a token and the archive's lake: %+v", d)
	}
	if ls := compose.Services["localstack"]; !slices.Contains(strings.Split(ls.Environment["SERVICES"], ","), "s3") {
		t.Errorf("LocalStack's SERVICES %q lack s3", ls.Environment["SERVICES"])
	}
	checked := 0
	for name, svc := range compose.Services {
		if svc.Build == nil {
			continue // a server image, not clickfleet
		}
		t.Run(name, func(t *testing.T) {
			checked++
			if len(svc.Command) == 0 {
				t.Fatal("no command")
			}
			root := newRootCommand()
			cmd, args, err := root.Find(svc.Command)
			if err != nil || cmd == root {
				t.Fatalf("command %q is not a clickfleet subcommand (%v)", svc.Command, err)
			}
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatalf("command %q: %v", svc.Command, err)
			}
			known := flagEnvNames(cmd)
			for env := range svc.Environment {
				if strings.HasPrefix(env, "CLICKFLEET_") && !known[env] {
					t.Errorf("environment %s is not a setting of 'clickfleet %s'", env, cmd.Name())
				}
			}
		})
	}
	if checked < 3 {
		t.Fatalf("checked %d clickfleet services, want at least setup, gen and tail", checked)
	}
}

func flagEnvNames(cmd *cobra.Command) map[string]bool {
	names := map[string]bool{}
	add := func(f *pflag.Flag) { names[envName(f.Name)] = true }
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return names
}

func TestEnvironmentSetsFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		want    string // --stream of setup after parsing
	}{
		{name: "default", want: "clickstream"},
		{name: "env", env: map[string]string{"CLICKFLEET_STREAM": "from-env"}, want: "from-env"},
		{name: "flag wins", env: map[string]string{"CLICKFLEET_STREAM": "from-env"}, args: []string{"--stream", "from-flag"}, want: "from-flag"},
		{name: "bad value names the variable", env: map[string]string{"CLICKFLEET_SHARDS": "many"}, wantErr: `CLICKFLEET_SHARDS="many" (flag --shards)`},
		{name: "bad log format", env: map[string]string{"CLICKFLEET_LOG_FORMAT": "xml"}, wantErr: "--log-format (CLICKFLEET_LOG_FORMAT)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			root := newRootCommand()
			setup, _, err := root.Find([]string{"setup"})
			if err != nil {
				t.Fatal(err)
			}
			var got string
			setup.RunE = func(cmd *cobra.Command, _ []string) error {
				got = cmd.Flag("stream").Value.String()
				return nil
			}
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"setup"}, tc.args...))
			err = root.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("--stream = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("redis-url"); got != "CLICKFLEET_REDIS_URL" {
		t.Fatalf("envName(redis-url) = %s", got)
	}
}
