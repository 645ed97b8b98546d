package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// lockIDEnv is where `syncguard release` takes the lock ID from when it is
// not on standard input. `syncguard run` sets it for its command, so the
// command can release its own lock early.
const lockIDEnv = "SYNCGUARD_LOCK_ID"

const statusUsage = `Usage: syncguard status [--backend URL] [--json] [--raw] KEY

Show whether KEY is locked, with its fence and expiry.

Arguments:
  KEY  the lock key

The key and lock ID are shown as hashes; --raw shows them (whoever reads the
lock ID can release the lock). To release the lock of KEY, use
syncguard release --key KEY.
`

const releaseUsage = `Usage: syncguard release [--backend URL] [--json] [--raw] [--key KEY]
       echo LOCK_ID | syncguard release [--backend URL]
       SYNCGUARD_LOCK_ID=… syncguard release [--backend URL]

Release a lock (an administrator's tool; exit 1 if nothing was released).

The lock to release:
  --key KEY          the lock that holds KEY now
  SYNCGUARD_LOCK_ID  the lock ID, from the environment (syncguard run sets it
                     for its command); else
  standard input     the lock ID, its first line
The lock ID is a credential: it is not taken from the command line, which
other users see in the process list. (A positional LOCK_ID still works but is
deprecated and prints a warning.)
`

// adminFlags are the flags status and release share.
type adminFlags struct {
	backend     string
	json, quiet bool
	raw         bool
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.backend, "backend", envDefault(backendEnv, ""), "backend URL (env SYNCGUARD_BACKEND; the environment keeps a password out of the process list)")
	fs.BoolVar(&a.json, "json", false, "print the result and errors as JSON")
	fs.BoolVar(&a.quiet, "quiet", false, "print nothing but errors on stderr")
	fs.BoolVar(&a.raw, "raw", false, "print the key and lock ID themselves, not their hashes")
}

// statusCommand prints the state of a key.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer, conf *config) int {
	p := newPrinter("status", stderr, args)
	p.secretURL(os.Getenv(backendEnv))
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var a adminFlags
	a.register(fs)
	if code, done := parseFlags(fs, args, statusUsage+"\n"+conf.backendHelp()+"\n", stdout, p); done {
		return code
	}
	p.json, p.quiet = a.json, a.quiet
	p.secretURL(a.backend)
	if fs.NArg() != 1 {
		return p.fail(usageError("status takes one argument, the KEY (got %d)", fs.NArg()))
	}
	key := fs.Arg(0)
	if _, err := driver.NormalizeKey(key); err != nil {
		return p.fail(usageError("KEY: %v", err))
	}
	sess, err := openBackend(ctx, a.backend, conf, p.logger())
	if err != nil {
		return p.fail(err)
	}
	defer sess.close()
	nkey, _ := driver.NormalizeKey(key)
	info, err := sess.backend.LookupByKey(ctx, nkey)
	if err != nil {
		return p.fail(fmt.Errorf("backend %s: %w", sess.name, err))
	}
	if a.json {
		out := keyFields(key, a.raw)
		out["locked"] = info != nil
		if info != nil {
			out["fence"] = info.Fence.String()
			out["expiresAtMs"] = info.ExpiresAtMs
			out["acquiredAtMs"] = info.AcquiredAtMs
			out["lockIdHash"] = driver.HashKey(info.LockID)
			if a.raw {
				out["lockId"] = info.LockID
			}
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	name := "key hash " + driver.HashKey(key)
	if a.raw {
		name = key
	}
	if info == nil {
		fmt.Fprintf(stdout, "%s: free\n", name)
		return exitOK
	}
	left := time.Until(time.UnixMilli(info.ExpiresAtMs)).Round(time.Millisecond)
	id := "lock ID hash " + driver.HashKey(info.LockID)
	if a.raw {
		id = "lock ID " + info.LockID
	}
	fmt.Fprintf(stdout, "%s: locked, fence %s, expires in %s (%s)\n", name, info.Fence, left, id)
	return exitOK
}

// releaseCommand releases a lock by its ID or key (an administrator's tool).
func releaseCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, conf *config) int {
	p := newPrinter("release", stderr, args)
	p.secretURL(os.Getenv(backendEnv))
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	var a adminFlags
	a.register(fs)
	byKey := fs.String("key", "", "release the lock that holds KEY now (no lock ID needed)")
	if code, done := parseFlags(fs, args, releaseUsage+"\n"+conf.backendHelp()+"\n", stdout, p); done {
		return code
	}
	p.json, p.quiet = a.json, a.quiet
	p.secretURL(a.backend)
	keyGiven := false
	fs.Visit(func(f *flag.Flag) { keyGiven = keyGiven || f.Name == "key" })
	var id string
	switch {
	case fs.NArg() > 1:
		return p.fail(usageError("release takes at most one argument (got %d); pass the lock ID on standard input or in %s", fs.NArg(), lockIDEnv))
	case fs.NArg() == 1 && keyGiven:
		return p.fail(usageError("give --key or a lock ID, not both"))
	case fs.NArg() == 1 && fs.Arg(0) != "-":
		id = fs.Arg(0)
		p.warn("a lock ID on the command line is deprecated: other users see it in the process list; pass it on standard input or in " + lockIDEnv)
	case keyGiven:
		if _, err := driver.NormalizeKey(*byKey); err != nil {
			return p.fail(usageError("--key: %v", err))
		}
	case os.Getenv(lockIDEnv) != "" && fs.NArg() == 0:
		id = os.Getenv(lockIDEnv)
	default:
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return p.fail(usageError("reading the lock ID from standard input: %v", err))
		}
		id = strings.TrimSpace(line)
		if id == "" {
			return p.fail(usageError("no lock ID: pass it on standard input or in %s, or use --key KEY", lockIDEnv))
		}
	}
	if !keyGiven {
		if err := driver.ValidateLockID(id); err != nil {
			return p.fail(usageError("%v: a lock ID is 22 characters of A-Z, a-z, 0-9, - and _", err))
		}
	}
	if !a.raw && id != "" {
		p.hideID(id)
	}
	sess, err := openBackend(ctx, a.backend, conf, p.logger())
	if err != nil {
		return p.fail(err)
	}
	defer sess.close()
	relKey := "" // a release by lock ID alone unless --key named it
	if keyGiven {
		nkey, err := driver.NormalizeKey(*byKey)
		if err != nil {
			return p.fail(usageError("--key: %v", err))
		}
		info, err := sess.backend.LookupByKey(ctx, nkey)
		if err != nil {
			return p.fail(fmt.Errorf("backend %s: %w", sess.name, err))
		}
		if info == nil {
			return releaseResult(p, stdout, a, "", driver.ReleaseResult{Detail: driver.DetailNotFound})
		}
		id, relKey = info.LockID, nkey
		if !a.raw {
			p.hideID(id)
		}
	}
	r, err := sess.backend.Release(ctx, relKey, id)
	if err != nil {
		return p.fail(fmt.Errorf("backend %s: %w", sess.name, err))
	}
	return releaseResult(p, stdout, a, id, r)
}

// releaseResult prints the outcome of a release and returns its exit code.
func releaseResult(p *printer, stdout io.Writer, a adminFlags, id string, r driver.ReleaseResult) int {
	code := exitOK
	if !r.OK {
		code = exitFailure
	}
	if a.json {
		out := map[string]any{"released": r.OK, "detail": r.Detail}
		if id != "" {
			out["lockIdHash"] = driver.HashKey(id)
			if a.raw {
				out["lockId"] = id
			}
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(b))
		return code
	}
	name := "lock ID hash " + driver.HashKey(id)
	if a.raw {
		name = "lock ID " + id
	}
	switch {
	case r.OK:
		fmt.Fprintf(stdout, "released (%s)\n", name)
	case id == "":
		fmt.Fprintf(stdout, "not released: no live lock holds the key\n")
	default:
		fmt.Fprintf(stdout, "not released (%s): %s\n", name, r.Detail)
	}
	return code
}
