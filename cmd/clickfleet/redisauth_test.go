package main

import (
	"context"
	"strings"
	"testing"

	"github.com/clickfleet/clickfleet/internal/testenv"
)

// A Redis that requires a password (ElastiCache's auth token, a MemoryDB ACL user) is reached with the
// password from REDISCLI_AUTH when --redis-url carries none, so the secret ECS injects stays out of the
// URL; a password in the URL wins.
func TestRedisPasswordFromTheEnvironment(t *testing.T) {
	testenv.Redis(t) // the stack's redis-server binary
	port := testenv.FreePort(t)
	admin := testenv.StartRedis(t, t.TempDir(), port)
	ctx := context.Background()
	if err := admin.ConfigSet(ctx, "requirepass", "token-from-secrets-manager").Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://127.0.0.1:" + port + "/0"
	ping := func(url string) error {
		rdb, err := newRedis(url)
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		return rdb.Ping(ctx).Err()
	}
	t.Setenv(redisPasswordEnv, "")
	if err := ping(url); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("without a password: %v, want NOAUTH", err)
	}
	t.Setenv(redisPasswordEnv, "token-from-secrets-manager")
	if err := ping(url); err != nil {
		t.Fatalf("with %s: %v", redisPasswordEnv, err)
	}
	if err := ping("redis://:wrong-password@127.0.0.1:" + port + "/0"); err == nil {
		t.Fatalf("the URL's wrong password was not used: %s replaced it", redisPasswordEnv)
	}
}
