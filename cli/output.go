package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/syncguard/syncguard/driver"
)

// cliError is an error with the exit code it ends the command with.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// usageError reports wrong usage (exit 2): a bad flag, URL, key or TTL.
func usageError(format string, args ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, args...)}
}

// unavailableError reports a backend that cannot be used (exit 69): it is
// unreachable, refused the credentials or lacks the database.
func unavailableError(format string, args ...any) error {
	return &cliError{code: exitUnavailable, msg: fmt.Sprintf(format, args...)}
}

// exitCodeFor classifies err: a cliError carries its code; otherwise
// InvalidArgument is wrong usage and anything else a backend failure.
func exitCodeFor(err error) int {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	if driver.CodeOf(err) == driver.InvalidArgument {
		return exitUsage
	}
	return exitUnavailable
}

// printer writes a subcommand's own lines to stderr: events, warnings and
// errors, as text or (--json) one JSON object per line. Every line passes
// through redact, so that no password of the backend URL is printed.
type printer struct {
	cmd   string
	w     io.Writer
	json  bool
	quiet bool
	mu    sync.Mutex
	hide  []string // raw values (lock IDs) to replace by their hash
	creds []string // secrets (URL passwords) to mask
}

func newPrinter(cmd string, w io.Writer, args []string) *printer {
	return &printer{cmd: cmd, w: w, json: flagGiven(args, "json"), quiet: flagGiven(args, "quiet")}
}

// flagGiven reports whether boolean flag name is set among args before a
// "--" (so that it is known before the flags are parsed, for the parse
// errors themselves).
func flagGiven(args []string, name string) bool {
	on := false
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		v, val, hasVal := strings.Cut(a, "=")
		if v != name {
			continue
		}
		on = !hasVal || val == "true" || val == "1" || val == "t" || val == "T" || val == "TRUE" || val == "True"
	}
	return on
}

// secretURL registers the backend URL's password, so that the printer
// masks it wherever it appears.
func (p *printer) secretURL(raw string) {
	if pw := urlPassword(raw); len(pw) >= 3 {
		p.creds = append(p.creds, pw)
		if d, err := url.PathUnescape(pw); err == nil && d != pw && len(d) >= 3 {
			p.creds = append(p.creds, d)
		}
	}
}

// hideID makes the printer show id only as its hash.
func (p *printer) hideID(id string) {
	if id != "" {
		p.hide = append(p.hide, id)
	}
}

func (p *printer) redact(s string) string {
	s = redactURLs(s)
	for _, c := range p.creds {
		s = strings.ReplaceAll(s, c, "xxxxx")
	}
	for _, id := range p.hide {
		s = strings.ReplaceAll(s, id, "lock-ID-hash:"+driver.HashKey(id))
	}
	return s
}

func (p *printer) redactFields(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if s, ok := v.(string); ok {
			v = p.redact(s)
		}
		out[k] = v
	}
	return out
}

// line writes one event, as JSON ({"event": kind, "time": …, fields…}) or
// as "syncguard CMD: human".
func (p *printer) line(kind string, fields map[string]any, human string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		m := p.redactFields(fields)
		m["event"] = kind
		m["time"] = time.Now().UTC().Format(time.RFC3339Nano)
		b, _ := json.Marshal(m)
		fmt.Fprintln(p.w, string(b))
		return
	}
	fmt.Fprintf(p.w, "syncguard %s: %s\n", p.cmd, p.redact(human))
}

// info prints an informational event; --quiet drops it.
func (p *printer) info(kind string, fields map[string]any, human string) {
	if !p.quiet {
		p.line(kind, fields, human)
	}
}

// warn prints a warning; --quiet drops it.
func (p *printer) warn(msg string) {
	if !p.quiet {
		p.line("warning", map[string]any{"warning": msg}, "warning: "+msg)
	}
}

// fail prints err and returns its exit code ([exitCodeFor]). Errors are
// printed under --quiet too.
func (p *printer) fail(err error) int {
	code := exitCodeFor(err)
	fields := map[string]any{"error": err.Error(), "exitCode": code}
	if c := driver.CodeOf(err); c != 0 {
		fields["code"] = c.String()
	}
	human := err.Error()
	if code == exitUsage && !p.json {
		human += fmt.Sprintf(" (see syncguard %s --help)", p.cmd)
	}
	p.line("error", fields, human)
	return code
}

// help prints a subcommand's help (asked for with --help) to w: as text,
// or as one JSON object {"event":"help","help":TEXT} under --json.
func (p *printer) help(w io.Writer, text string) {
	if p.json {
		b, _ := json.Marshal(map[string]any{"event": "help", "help": text})
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprint(w, text)
}

// parseFlags parses args into fs. It returns done when the command is over:
// --help printed the help (exit 0) or a flag was wrong (exit 2, reported
// through p). usage is the synopsis and argument list; the flags' defaults
// are appended to it.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer, p *printer) (code int, done bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if err == nil {
		return exitOK, false
	}
	if errors.Is(err, flag.ErrHelp) {
		p.help(stdout, helpText(fs, usage))
		return exitOK, true
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") && driver.ValidLockID(a) {
			// A lock ID starting with '-' (made before IDs avoided it)
			// reads as a flag, and the flag package's error names it.
			// Show it as its hash unless --raw, as every other line does.
			msg := err.Error()
			if !flagGiven(args, "raw") {
				msg = hideFlagArg(msg, a)
				p.hideID(a)
			}
			return p.fail(usageError("%s (a lock ID starting with '-' must come after --, on stdin or in SYNCGUARD_LOCK_ID)", msg)), true
		}
	}
	if strings.HasPrefix(err.Error(), "flag provided but not defined") {
		// Most often a key (or a child's argument) that starts with '-'.
		return p.fail(usageError("%v (an argument starting with '-', such as a key, must come after --)", err)), true
	}
	return p.fail(usageError("%v", err)), true
}

// hideFlagArg replaces arg (a lock ID) in msg, a flag parse error, by its
// hash: as given ("bad flag syntax: ---x") and as the flag package names
// a flag it does not know ("-" and arg without its one or two leading
// dashes), so that no part of the ID is left.
func hideFlagArg(msg, arg string) string {
	shown := "lock ID hash " + driver.HashKey(arg)
	msg = strings.ReplaceAll(msg, arg, shown)
	name := strings.TrimPrefix(arg, "-")
	name = strings.TrimPrefix(name, "-")
	return strings.ReplaceAll(msg, "-"+name, shown)
}

// helpText is usage followed by fs's flags.
func helpText(fs *flag.FlagSet, usage string) string {
	var b strings.Builder
	b.WriteString(usage)
	b.WriteString("\nFlags:\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// urlUserinfo matches the userinfo of anything URL-like in a text:
// scheme "://" user ":" password "@".
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:"'` + "`" + `]*):[^@\s"'` + "`" + `]*@`)

// redactURLs masks the password of every URL in s (user:xxxxx@), whether
// or not the URL parses.
func redactURLs(s string) string {
	return urlUserinfo.ReplaceAllString(s, "${1}:xxxxx@")
}

// urlUserinfoOf returns the userinfo of a URL as written ("" if none):
// what precedes its last "@" (so that a password with an unescaped "/",
// "?" or "#" is found too; an "@" in the query makes it mask too much,
// never too little). It works on URLs that do not parse.
func urlUserinfoOf(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		_, rest, ok = strings.Cut(raw, ":")
		if !ok {
			return ""
		}
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return ""
	}
	return rest[:at]
}

// urlPassword returns the (still escaped) password of a URL as written, ""
// if it has none. It works on URLs that do not parse.
func urlPassword(raw string) string {
	_, pw, ok := strings.Cut(urlUserinfoOf(raw), ":")
	if !ok {
		return ""
	}
	return pw
}

var quoted = regexp.MustCompile(`"[^"]*"`)

// parseErrorText is the text of a URL parse error of raw with every quoted
// fragment that is part of raw's password masked (net/url quotes the bad
// port, host character or escape it found).
func parseErrorText(raw string, err error) string {
	pw := urlPassword(raw)
	msg := err.Error()
	if pw == "" {
		return msg
	}
	masked := false
	msg = quoted.ReplaceAllStringFunc(msg, func(q string) string {
		frag := strings.TrimLeft(strings.Trim(q, `"`), ":")
		if frag != "" && strings.Contains(pw, frag) {
			masked = true
			return `"xxxxx"`
		}
		return q
	})
	if masked {
		msg += " (in the password: percent-encode / ? # @ : in a password)"
	}
	return msg
}

// redactedURL is raw with its password masked, for messages.
func redactedURL(raw string) string {
	if urlPassword(raw) == "" {
		return redactURLs(raw)
	}
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	s := redactURLs(raw)
	if pw := urlPassword(s); pw != "" && pw != "xxxxx" {
		s = strings.Replace(s, ":"+pw+"@", ":xxxxx@", 1)
	}
	return s
}

// logHandler passes the library's and drivers' log records (Warn and
// above; Error only under --quiet) to the printer, so that --json output
// stays JSON and passwords stay masked.
type logHandler struct {
	p     *printer
	attrs []slog.Attr
}

// logger is a *slog.Logger writing through p.
func (p *printer) logger() *slog.Logger { return slog.New(&logHandler{p: p}) }

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool {
	if h.p.quiet {
		return l >= slog.LevelError
	}
	return l >= slog.LevelWarn
}

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]any{"level": r.Level.String(), "msg": r.Message}
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		if _, taken := fields[a.Key]; !taken {
			fields[a.Key] = v
		}
		fmt.Fprintf(&b, " %s=%q", a.Key, v)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.p.line("log", fields, b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{p: h.p, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
