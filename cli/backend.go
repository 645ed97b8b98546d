package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
)

// backendURLHelp documents the accepted backend URLs.
const backendURLHelp = `Backend URLs (--backend or SYNCGUARD_BACKEND):
  memory://                          in-process, single process only (for trying it out)
  redis://[user:pass@]host:port[/db]  one Redis node
  rediss://…                          the same over TLS
  redis+cluster://host:port?addr=host2:port2
                                      a Redis Cluster (seed addresses)
  redis+sentinel://host:port?master_set=NAME[&addr=host2:port2]
                                      a Sentinel-managed primary
  Redis URLs take ?prefix=KEYPREFIX (default syncguard) and the rueidis
  options dial_timeout, write_timeout, client_name, protocol.
  postgres://user@host:port/db?sslmode=disable
                                      PostgreSQL (pgx connection string); the
                                      schema is created if missing (idempotent)
  firestore://PROJECT                 only in the Firestore build of syncguard
                                      (drivers/firestore/cmd/syncguard)`

// guardRunner acquires key and hands the typed lease's essentials to fn.
type guardRunner func(ctx context.Context, key string, opts []syncguard.AcquireOption, try bool) (held, error)

// held is a type-erased lease.
type held struct {
	lockID  string
	fence   syncguard.Fence
	lost    <-chan struct{}
	lostErr func() error
	release func(ctx context.Context) error
}

func runnerFor[C syncguard.FencedCapabilities](d syncguard.Driver[C]) guardRunner {
	g := syncguard.New(d, syncguard.WithOnReleaseError(func(error, syncguard.ReleaseErrorInfo) {}))
	return func(ctx context.Context, key string, opts []syncguard.AcquireOption, try bool) (held, error) {
		var (
			l   *syncguard.Lease[C]
			err error
		)
		if try {
			l, err = g.TryAcquire(ctx, key, opts...)
		} else {
			l, err = g.Acquire(ctx, key, opts...)
		}
		if err != nil {
			return held{}, err
		}
		return held{
			lockID:  l.LockID(),
			fence:   syncguard.FenceOf(l),
			lost:    l.Lost(),
			lostErr: func() error { return context.Cause(l.Context()) },
			release: func(ctx context.Context) error {
				ok, err := l.Release(ctx)
				if err == nil && !ok {
					err = errors.New("the lock was gone at release")
				}
				return err
			},
		}, nil
	}
}

// backendHelp is the usage text of the backend URLs, with added backends.
func (c *config) backendHelp() string {
	h := backendURLHelp
	for _, l := range c.help {
		h += "\n" + l
	}
	return h
}

// openBackend opens the backend a URL names.
func openBackend(ctx context.Context, raw string, conf *config) (*Session, error) {
	if raw == "" {
		return nil, fmt.Errorf("no backend: pass --backend URL or set SYNCGUARD_BACKEND\n\n%s", conf.backendHelp())
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid backend URL: %v", err)
	}
	if open, ok := conf.backends[u.Scheme]; ok {
		return open(ctx, u)
	}
	switch u.Scheme {
	case "memory":
		d := memory.New()
		return NewSession("memory", d, nil), nil
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel":
		return openRedis(ctx, u)
	case "postgres", "postgresql":
		return openPostgres(ctx, u)
	case "firestore":
		return nil, fmt.Errorf("backend firestore:// is not in this binary: install the Firestore build, go install github.com/syncguard/syncguard/drivers/firestore/cmd/syncguard@latest")
	default:
		return nil, fmt.Errorf("unknown backend URL scheme %q\n\n%s", u.Scheme, conf.backendHelp())
	}
}

func openRedis(ctx context.Context, u *url.URL) (*Session, error) {
	q := u.Query()
	prefix, hasPrefix := q.Get("prefix"), q.Has("prefix")
	q.Del("prefix")
	sentinel := strings.HasSuffix(u.Scheme, "+sentinel")
	if sentinel && q.Get("master_set") == "" {
		return nil, fmt.Errorf("redis+sentinel:// needs ?master_set=NAME")
	}
	v := *u
	v.Scheme = strings.TrimSuffix(strings.TrimSuffix(u.Scheme, "+cluster"), "+sentinel")
	v.RawQuery = q.Encode()
	opt, err := rueidis.ParseURL(v.String())
	if err != nil {
		return nil, fmt.Errorf("invalid Redis URL: %v", err)
	}
	opt.DisableCache = true
	if strings.HasSuffix(u.Scheme, "+cluster") {
		opt.ShuffleInit = true
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = 5 * time.Second
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("connecting to Redis: %v", err)
	}
	var ropts []redis.Option
	if hasPrefix {
		ropts = append(ropts, redis.WithKeyPrefix(prefix))
	}
	d, err := redis.New(client, ropts...)
	if err != nil {
		client.Close()
		return nil, err
	}
	return NewSession("redis", d, func() { d.Close(); client.Close() }), nil
}

func openPostgres(ctx context.Context, u *url.URL) (*Session, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(cctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("invalid PostgreSQL URL: %v", err)
	}
	if err := postgres.Setup(cctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("preparing the PostgreSQL schema: %w", err)
	}
	d, err := postgres.New(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return NewSession("postgres", d, func() { d.Close(); pool.Close() }), nil
}
