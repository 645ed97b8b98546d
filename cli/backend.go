package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"
	"github.com/syncguard/syncguard"
	"github.com/syncguard/syncguard/driver"
	"github.com/syncguard/syncguard/drivers/memory"
	"github.com/syncguard/syncguard/drivers/postgres"
	"github.com/syncguard/syncguard/drivers/redis"
)

// backendURLHelp documents the accepted backend URLs.
const backendURLHelp = `Backend URLs (--backend or SYNCGUARD_BACKEND):
  memory://                           in-process, single process only (for trying it out)
  redis://host:port[/db]              one Redis node (credentials as the URL's user info)
  rediss://…                          the same over TLS
  redis+cluster://host:port?addr=host2:port2
                                      a Redis Cluster (seed addresses)
  redis+sentinel://host:port?master_set=NAME[&addr=host2:port2]
                                      a Sentinel-managed primary
  Redis URLs take ?prefix=KEYPREFIX (default syncguard) and the rueidis
  options db, dial_timeout, write_timeout, addr, protocol, client_name,
  max_retries (skip_verify with rediss); other options are refused.
  postgres://user@host:port/db?sslmode=disable
                                      PostgreSQL (pgx connection string); the
                                      schema is created if missing (idempotent);
                                      an option PostgreSQL does not know is refused
  firestore://PROJECT                 only in the Firestore build of syncguard
                                      (drivers/firestore/cmd/syncguard)`

// held is what the run command needs of its lease.
type held struct {
	lockID  string
	fence   syncguard.Fence
	lost    <-chan struct{}
	lostErr func() error
	release func(ctx context.Context) error
}

// acquire acquires key on the session's backend (once when try is set),
// or one of its permits when permits > 1. Library log records go to log.
func (s *Session) acquire(ctx context.Context, key string, permits int, opts []syncguard.AcquireOption, try bool, log *slog.Logger) (held, error) {
	gopts := []syncguard.Option{syncguard.WithOnReleaseError(func(error, string, string) {}), syncguard.WithLogger(log)}
	if permits > 1 {
		return s.acquirePermit(ctx, key, permits, opts, try, gopts)
	}
	return take(ctx, s.newGuard(gopts...), key, opts, try)
}

// acquirer is a Guard or a semaphore.
type acquirer[C syncguard.Fenced] interface {
	Acquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error)
	TryAcquire(ctx context.Context, key string, opts ...syncguard.AcquireOption) (*syncguard.Lease[C], error)
}

// take acquires key with a (once when try is set).
func take[C syncguard.Fenced](ctx context.Context, a acquirer[C], key string, opts []syncguard.AcquireOption, try bool) (held, error) {
	acquire := a.Acquire
	if try {
		acquire = a.TryAcquire
	}
	l, err := acquire(ctx, key, opts...)
	if err != nil {
		return held{}, err
	}
	return heldOf(l), nil
}

// heldOf is what the run command needs of l.
func heldOf[C syncguard.Fenced](l *syncguard.Lease[C]) held {
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

// openBackend opens the backend a URL names. Its errors are classified
// ([exitCodeFor]): a URL that cannot work is a usage error, a backend that
// cannot be reached, refuses the credentials or lacks the database is
// unavailable. No message contains the URL's password.
func openBackend(ctx context.Context, raw string, conf *config, log *slog.Logger) (*Session, error) {
	if raw == "" {
		return nil, usageError("no backend: pass --backend URL or set SYNCGUARD_BACKEND\n\n%s", conf.backendHelp())
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, usageError("invalid backend URL %s: %s", redactedURL(raw), parseErrorText(raw, err))
	}
	if u.Scheme == "" {
		return nil, usageError("backend URL %s has no scheme (redis://, postgres://, memory://…)\n\n%s", redactedURL(raw), conf.backendHelp())
	}
	if open, ok := conf.backends[u.Scheme]; ok {
		return open(ctx, u)
	}
	switch u.Scheme {
	case "memory":
		if err := checkOptions(u, nil); err != nil {
			return nil, err
		}
		d := memory.New(memory.WithLogger(log))
		return NewSession("memory", d, nil), nil
	case "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel":
		return openRedis(ctx, u, log)
	case "postgres", "postgresql":
		return openPostgres(ctx, u, log)
	case "firestore":
		return nil, usageError("backend firestore:// is not in this binary: install the Firestore build, go install github.com/syncguard/syncguard/drivers/firestore/cmd/syncguard@latest")
	default:
		return nil, usageError("unknown backend URL scheme %q\n\n%s", u.Scheme, conf.backendHelp())
	}
}

// checkOptions rejects query options of u not in known.
func checkOptions(u *url.URL, known []string) error {
	for name := range u.Query() {
		if !slices.Contains(known, name) {
			if len(known) == 0 {
				return usageError("backend URL %s: unknown option %q (%s:// takes no options)", u.Redacted(), name, u.Scheme)
			}
			return usageError("backend URL %s: unknown option %q (known: %s)", u.Redacted(), name, strings.Join(known, ", "))
		}
	}
	return nil
}

// redisOptions are the query options a Redis URL takes: the CLI's prefix
// and what rueidis.ParseURL reads, except client_cache (the driver runs
// with the client cache off, so the option would be silently overridden).
var redisOptions = []string{"prefix", "db", "dial_timeout", "write_timeout", "addr", "protocol", "client_name", "max_retries"}

func openRedis(ctx context.Context, u *url.URL, log *slog.Logger) (*Session, error) {
	sentinel := strings.HasSuffix(u.Scheme, "+sentinel")
	known := redisOptions
	if sentinel {
		known = append(slices.Clip(known), "master_set")
	}
	if strings.HasPrefix(u.Scheme, "rediss") {
		known = append(slices.Clip(known), "skip_verify")
	}
	if err := checkOptions(u, known); err != nil {
		return nil, err
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, usageError("Redis URL %s has no host: write %s://HOST:PORT[/DB] (two slashes after the colon)", u.Redacted(), u.Scheme)
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 0 {
			return nil, usageError("Redis URL %s: the path is the database number (/0, /1…), not %q", u.Redacted(), u.Path)
		}
	}
	q := u.Query()
	prefix, hasPrefix := q.Get("prefix"), q.Has("prefix")
	q.Del("prefix")
	if sentinel && q.Get("master_set") == "" {
		return nil, usageError("%s:// needs ?master_set=NAME", u.Scheme)
	}
	v := *u
	v.Scheme = strings.TrimSuffix(strings.TrimSuffix(u.Scheme, "+cluster"), "+sentinel")
	v.RawQuery = q.Encode()
	opt, err := rueidis.ParseURL(v.String())
	if err != nil {
		return nil, usageError("invalid Redis URL %s: %s", u.Redacted(), strings.TrimPrefix(err.Error(), "redis: "))
	}
	opt.DisableCache = true
	if strings.HasSuffix(u.Scheme, "+cluster") {
		opt.ShuffleInit = true
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = 5 * time.Second
	}
	ropts := []redis.Option{redis.WithLogger(log)}
	if hasPrefix {
		ropts = append(ropts, redis.WithKeyPrefix(prefix))
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, redisConnectError(u, opt.InitAddress, err)
	}
	d, err := redis.New(client, ropts...)
	if err != nil {
		client.Close()
		if driver.CodeOf(err) == driver.InvalidArgument {
			return nil, usageError("Redis URL %s: %v", u.Redacted(), err)
		}
		return nil, unavailableError("Redis at %s: %v", strings.Join(opt.InitAddress, ","), err)
	}
	return NewSession("redis", d, func() { d.Close(); client.Close() }), nil
}

// redisConnectError explains why rueidis could not connect.
func redisConnectError(u *url.URL, addrs []string, err error) error {
	at := strings.Join(addrs, ",")
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"),
		strings.Contains(msg, "invalid username-password"):
		return unavailableError("Redis at %s refused the credentials (%s): fix user:password in the backend URL", at, msg)
	case strings.Contains(msg, "NOPERM"):
		return unavailableError("Redis at %s: the user lacks a permission (%s): fix the ACL or the user in the backend URL", at, msg)
	case strings.Contains(msg, "DB index is out of range"), strings.Contains(msg, "invalid DB index"):
		return unavailableError("Redis at %s has no database %s (%s): fix the /DB of the backend URL", at, strings.TrimPrefix(u.Path, "/"), msg)
	case errors.Is(err, syscall.ECONNREFUSED):
		return unavailableError("cannot connect to Redis at %s: connection refused: is Redis running there? (check the host and port of --backend or SYNCGUARD_BACKEND)", at)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return unavailableError("cannot connect to Redis at %s: timed out (%s): check the host, port and firewall (?dial_timeout= sets the limit)", at, msg)
	}
	return unavailableError("cannot connect to Redis at %s: %s", at, msg)
}

func openPostgres(ctx context.Context, u *url.URL, log *slog.Logger) (*Session, error) {
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, usageError("invalid PostgreSQL URL: %s", redactURLs(err.Error()))
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(cctx, cfg)
	if err != nil {
		return nil, usageError("invalid PostgreSQL URL %s: %v", u.Redacted(), err)
	}
	if err := postgres.Setup(cctx, pool, postgres.WithLogger(log)); err != nil {
		pool.Close()
		return nil, postgresConnectError(u, cfg, err)
	}
	d, err := postgres.New(pool, postgres.WithLogger(log))
	if err != nil {
		pool.Close()
		return nil, err
	}
	return NewSession("postgres", d, func() { d.Close(); pool.Close() }), nil
}

// postgresConnectError explains why the PostgreSQL backend cannot be used.
func postgresConnectError(u *url.URL, cfg *pgxpool.Config, err error) error {
	cc := cfg.ConnConfig
	at := fmt.Sprintf("%s:%d", cc.Host, cc.Port)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "3D000":
			return unavailableError("PostgreSQL at %s has no database %q: create it (createdb %s) or fix the database in the backend URL", at, cc.Database, cc.Database)
		case pgErr.Code == "28000" && strings.Contains(pgErr.Message, "does not exist"):
			return unavailableError("PostgreSQL at %s has no role %q: create it or fix the user in the backend URL", at, cc.User)
		case pgErr.Code == "28P01":
			return unavailableError("PostgreSQL at %s refused the password of user %q: fix the password in the backend URL (or PGPASSWORD)", at, cc.User)
		case strings.HasPrefix(pgErr.Code, "28"):
			return unavailableError("PostgreSQL at %s refused user %q (SQLSTATE %s: %s): fix the user or pg_hba.conf", at, cc.User, pgErr.Code, pgErr.Message)
		case pgErr.Code == "42704" && strings.Contains(pgErr.Message, "configuration parameter"):
			return usageError("PostgreSQL URL %s: unknown option (%s)", u.Redacted(), pgErr.Message)
		case pgErr.Code == "42501":
			return unavailableError("PostgreSQL at %s: user %q may not create or use the syncguard tables (%s): grant the privileges or run the schema setup as an owner", at, cc.User, pgErr.Message)
		}
		return unavailableError("PostgreSQL at %s: SQLSTATE %s: %s", at, pgErr.Code, pgErr.Message)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return unavailableError("cannot connect to PostgreSQL at %s: connection refused: is PostgreSQL running there? (check the host and port of --backend or SYNCGUARD_BACKEND)", at)
	}
	if c := driver.CodeOf(err); c == driver.NetworkTimeout {
		return unavailableError("cannot connect to PostgreSQL at %s: timed out: check the host, port and firewall", at)
	}
	return unavailableError("cannot use PostgreSQL at %s: %v", at, err)
}
