package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/syncguard/syncguard/benchmarks"
)

// Charts: one SVG per scenario, one bar per library (SyncGuard's own
// adapters highlighted), and for the contended scenario the wait-time
// distribution of each library (p50, p99 and max on a log scale).

const (
	chartW     = 720
	barH       = 22
	labelW     = 170
	chartPad   = 40
	colorSG    = "#d9480f"
	colorPeer  = "#868e96"
	colorPeerL = "#ced4da"
)

func isSG(im benchmarks.Impl) bool { return im.SyncGuard || im.Driver }

// writeCharts writes serial.svg, parallel.svg, contended.svg and
// contended-wait.svg (those with results) into dir.
func writeCharts(dir string, impls []benchmarks.Impl, scenarios []string, sums map[string]map[string]med) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, sc := range scenarios {
		s := sums[sc]
		if len(s) == 0 {
			continue
		}
		unit, title := "pairs/s", sc+": acquire+release pairs per second (higher is better)"
		if sc == "contended" {
			unit, title = "CS/s", "contended: critical sections per second (higher is better)"
		}
		var rows []barRow
		for _, im := range impls {
			if m, ok := s[im.Name]; ok {
				rows = append(rows, barRow{name: im.Name, v: m.perSec, sg: isSG(im), label: fmt.Sprintf("%.0f %s", m.perSec, unit)})
			}
		}
		if err := os.WriteFile(filepath.Join(dir, sc+".svg"), []byte(barChart(title, rows)), 0o644); err != nil {
			return err
		}
		if sc == "contended" {
			var ws []waitRow
			for _, im := range impls {
				if m, ok := s[im.Name]; ok {
					ws = append(ws, waitRow{name: im.Name, sg: isSG(im), p50: m.waitP50, p99: m.waitAllP99, max: m.waitMax})
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "contended-wait.svg"), []byte(waitChart(ws)), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

type barRow struct {
	name, label string
	v           float64
	sg          bool
}

func svgHead(b *strings.Builder, h int, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, h, chartW, h)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(b, `<text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", esc(title))
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func barChart(title string, rows []barRow) string {
	var b strings.Builder
	h := chartPad + len(rows)*(barH+6) + 10
	svgHead(&b, h, title)
	maxV := 0.0
	for _, r := range rows {
		maxV = math.Max(maxV, r.v)
	}
	span := float64(chartW - labelW - 130)
	for i, r := range rows {
		y := chartPad + i*(barH+6)
		w := 0.0
		if maxV > 0 {
			w = r.v / maxV * span
		}
		color, weight := colorPeer, "normal"
		if r.sg {
			color, weight = colorSG, "bold"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-weight="%s">%s</text>`+"\n", labelW-6, y+barH-6, weight, esc(r.name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y, w, barH, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+w+6, y+barH-6, esc(r.label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

type waitRow struct {
	name          string
	sg            bool
	p50, p99, max time.Duration
}

// waitChart draws each library's waits on a log scale from 10 µs to 10 s:
// a thin line from p50 to max, a thick one from p50 to p99, and ticks.
func waitChart(rows []waitRow) string {
	var b strings.Builder
	h := chartPad + 20 + len(rows)*(barH+6) + 10
	svgHead(&b, h, "contended: wait per critical section, p50 – p99 (thick) – max (log scale, lower is better)")
	lo, hi := math.Log10(10e3), math.Log10(10e9) // ns
	span := float64(chartW - labelW - 30)
	x := func(d time.Duration) float64 {
		v := math.Log10(math.Max(float64(d), 10e3))
		return float64(labelW) + (math.Min(v, hi)-lo)/(hi-lo)*span
	}
	top := chartPad
	for _, t := range []struct {
		d time.Duration
		s string
	}{{10 * time.Microsecond, "10µs"}, {100 * time.Microsecond, "100µs"}, {time.Millisecond, "1ms"}, {10 * time.Millisecond, "10ms"}, {100 * time.Millisecond, "100ms"}, {time.Second, "1s"}, {10 * time.Second, "10s"}} {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e9ecef"/>`+"\n", x(t.d), top, x(t.d), h-10)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#495057">%s</text>`+"\n", x(t.d), top+12, t.s)
	}
	for i, r := range rows {
		y := top + 20 + i*(barH+6)
		mid := float64(y) + barH/2
		color, light, weight := colorPeer, colorPeerL, "normal"
		if r.sg {
			color, light, weight = colorSG, "#ffc9a9", "bold"
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" font-weight="%s">%s</text>`+"\n", labelW-6, y+barH-6, weight, esc(r.name))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", x(r.p50), mid, x(r.max), mid, light)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="12"/>`+"\n", x(r.p50), mid, math.Max(x(r.p99), x(r.p50)+2), mid, color)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-width="2"/>`+"\n", x(r.max), y+3, x(r.max), y+barH-3)
		fmt.Fprintf(&b, `<title>%s: p50 %s, p99 %s, max %s</title>`+"\n", esc(r.name), dur(r.p50), dur(r.p99), dur(r.max))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
