package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Sentinel errors of package metrics.
var (
	// ErrDuplicate: a collector declares a metric family another collector
	// of the registry already declares.
	ErrDuplicate = errors.New("metrics: duplicate metric family")
)

// Kind is a metric family's type in the exposition format.
type Kind string

// The kinds this package emits.
const (
	KindGauge     Kind = "gauge"
	KindCounter   Kind = "counter"
	KindHistogram Kind = "histogram"
)

// Label is one label pair of a sample.
type Label struct{ Name, Value string }

// Sample is one line of a family: the family name plus Suffix ("" for
// gauges and counters; "_bucket", "_sum" or "_count" for histograms), its
// labels and value.
type Sample struct {
	Suffix string
	Labels []Label
	Value  float64
}

// Family is one metric family as collected on a scrape.
type Family struct {
	Name    string
	Help    string
	Kind    Kind
	Samples []Sample
}

// Desc declares a family a collector emits, for Register's checks.
type Desc struct {
	Name string
	Help string
	Kind Kind
}

// Collector produces metric families on each scrape. Collect is called
// from the scraping goroutine, possibly concurrently with itself; it must
// only read state, and must emit only families it Describes.
type Collector interface {
	// Describe lists every family Collect may emit; it must not change.
	Describe() []Desc
	// Collect appends the current families. A family with no sample may be
	// left out.
	Collect(emit func(Family))
}

// Registry holds one member's collectors. It is safe for concurrent use.
// There is no global registry: several members in one process (tests,
// embedded clusters) each have their own.
type Registry struct {
	mu struct {
		sync.Mutex
		collectors []Collector
		names      map[string]Desc
		http       *HTTP // created by the first HTTP call
	}
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.mu.names = make(map[string]Desc)
	return r
}

// Register adds c. It fails with ErrDuplicate, registering nothing, when c
// declares a family name already declared.
func (r *Registry) Register(c Collector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.registerLocked(c)
}

func (r *Registry) registerLocked(c Collector) error {
	descs := c.Describe()
	seen := make(map[string]bool, len(descs))
	for _, d := range descs {
		if _, ok := r.mu.names[d.Name]; ok || seen[d.Name] {
			return fmt.Errorf("%w: %s", ErrDuplicate, d.Name)
		}
		seen[d.Name] = true
	}
	for _, d := range descs {
		r.mu.names[d.Name] = d
	}
	r.mu.collectors = append(r.mu.collectors, c)
	return nil
}

// HTTP returns the registry's request metrics of the HTTP front end,
// registering them on the first call; every call returns the same value.
// It panics if another collector declared their families.
func (r *Registry) HTTP() *HTTP {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.http == nil {
		h := newHTTP()
		if err := r.registerLocked(h); err != nil {
			panic(err)
		}
		r.mu.http = h
	}
	return r.mu.http
}

// MustRegister is Register that panics on error (a wiring bug).
func (r *Registry) MustRegister(cs ...Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Gather collects every family, sorted by name. Families a collector did
// not declare are dropped; help and kind come from the declaration.
func (r *Registry) Gather() []Family {
	r.mu.Lock()
	cs := slices.Clone(r.mu.collectors)
	names := r.mu.names // written only under mu by Register, read below under mu
	r.mu.Unlock()

	var out []Family
	for _, c := range cs {
		c.Collect(func(f Family) {
			out = append(out, f)
		})
	}
	r.mu.Lock()
	kept := out[:0]
	for _, f := range out {
		d, ok := names[f.Name]
		if !ok {
			continue
		}
		f.Help, f.Kind = d.Help, d.Kind
		kept = append(kept, f)
	}
	r.mu.Unlock()
	slices.SortStableFunc(kept, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return kept
}

// ContentType is the media type of WriteText's output (the Prometheus text
// exposition format 0.0.4).
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes every family in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range r.Gather() {
		writeFamily(bw, f)
	}
	return bw.Flush()
}

// Handler serves the registry in the text format (GET and HEAD).
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		if req.Method == http.MethodHead {
			return
		}
		_ = r.WriteText(w) // the client went away: nothing to do
	})
}

func writeFamily(w *bufio.Writer, f Family) {
	if len(f.Samples) == 0 {
		return
	}
	w.WriteString("# HELP ")
	w.WriteString(f.Name)
	w.WriteByte(' ')
	w.WriteString(escapeHelp(f.Help))
	w.WriteString("\n# TYPE ")
	w.WriteString(f.Name)
	w.WriteByte(' ')
	w.WriteString(string(f.Kind))
	w.WriteByte('\n')
	for _, s := range f.Samples {
		w.WriteString(f.Name)
		w.WriteString(s.Suffix)
		if len(s.Labels) > 0 {
			w.WriteByte('{')
			for i, l := range s.Labels {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(l.Name)
				w.WriteString(`="`)
				w.WriteString(escapeLabel(l.Value))
				w.WriteByte('"')
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(formatFloat(s.Value))
		w.WriteByte('\n')
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

// escapeLabel escapes a label value; invalid UTF-8 becomes U+FFFD.
func escapeLabel(s string) string { return labelEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// gauge and counter build a one-sample family.
func single(name string, v float64, labels ...Label) Family {
	return Family{Name: name, Samples: []Sample{{Labels: labels, Value: v}}}
}
