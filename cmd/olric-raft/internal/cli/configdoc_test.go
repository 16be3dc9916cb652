package cli

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/olric-raft/olric-raft/node"
)

var rewriteDocs = flag.Bool("rewrite-docs", false, "rewrite docs/configuration.md from the flags and config structs")

// configDocPath is the generated configuration reference.
const configDocPath = "../../../../docs/configuration.md"

// TestConfigurationReferenceIsCurrent keeps docs/configuration.md equal to
// what the server's flags and the --config file structs say (names,
// environment variables, defaults, and the field comments in the source).
// After changing a flag or a config field, run `make docs`.
func TestConfigurationReferenceIsCurrent(t *testing.T) {
	got := configReference(t)
	if *rewriteDocs {
		if err := os.WriteFile(configDocPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(configDocPath)
	if err != nil {
		t.Fatalf("%v (run `make docs`)", err)
	}
	if string(want) != got {
		t.Fatalf("docs/configuration.md is out of date: run `make docs` (go test ./cmd/olric-raft/internal/cli -run TestConfigurationReferenceIsCurrent -rewrite-docs)")
	}
}

// configReference renders the Markdown reference.
func configReference(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# Configuration reference

Generated from the source by ` + "`make docs`" + ` (a test fails when it is out
of date). A setting comes from, in order of precedence: the command-line
flag, the environment variable, the ` + "`--config`" + ` YAML file, the default.
Durations are Go durations (` + "`500ms`, `1.5s`, `2m`" + `); sizes are bytes.

## Server flags (` + "`olric-raft server`" + `)

| flag | environment | default | meaning |
| --- | --- | --- | --- |
`)
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	addServerFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		def := f.DefValue
		if def == "[]" || def == "" {
			def = ""
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, envName(f.Name), def, mdEscape(f.Usage))
	})

	b.WriteString(`
## The ` + "`--config`" + ` YAML file

Every key is optional. Nested keys are written as YAML maps
(` + "`timing:` then `  lease_duration: 1s`" + `); the table joins them with dots.
The ` + "`timing`" + ` defaults are the ` + "`lan`" + ` profile (` + "`--timing dev`" + ` shortens them).
Per-DMap settings go under ` + "`dataplane.dmaps.NAME`" + ` with the keys of
` + "`dataplane.default`" + `; each zero field there inherits ` + "`dataplane.default`" + `.

| key | type | default | meaning |
| --- | --- | --- | --- |
`)
	docs := fieldDocs(t, "../../../../node", "../../../../dataplane", "../../../../transport", ".")
	var walk func(prefix string, typ reflect.Type, val reflect.Value)
	walk = func(prefix string, typ reflect.Type, val reflect.Value) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			fv := val.Field(i)
			if opts == "inline" {
				walk(prefix, f.Type, fv)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			key := prefix + name
			doc := docs[typ.Name()+"."+f.Name]
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)):
				walk(key+".", f.Type, fv)
				continue
			case f.Type.Kind() == reflect.Map:
				fmt.Fprintf(&b, "| `%s.NAME` | map | | %s |\n", key, mdEscape(doc))
				continue
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", key, typeName(f.Type), defaultOf(fv), mdEscape(doc))
		}
	}
	cfgType := reflect.TypeOf(fileConfig{})
	def := reflect.New(cfgType).Elem()
	fc := fileConfig{}
	fc.Config = node.DefaultConfig()
	fc.LogLevel, fc.LogFormat = "info", "text"
	def.Set(reflect.ValueOf(fc))
	walk("", cfgType, def)
	return b.String()
}

// fieldDocs returns "Type.Field" → the field's doc comment (a field
// without one takes the comment of the field before it, as in
// "A and B are ..."), from the Go files of dirs.
func fieldDocs(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return true
				}
				last := ""
				for _, field := range st.Fields.List {
					doc := strings.Join(strings.Fields(field.Doc.Text()), " ")
					if doc == "" {
						doc = last
					}
					last = doc
					for _, name := range field.Names {
						out[ts.Name.Name+"."+name.Name] = doc
					}
				}
				return true
			})
		}
	}
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "duration"
	case t.Kind() == reflect.Slice:
		return "list of " + t.Elem().Kind().String()
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.String:
		return "string"
	}
	return "integer"
}

func defaultOf(v reflect.Value) string {
	var s string
	switch {
	case v.Type() == reflect.TypeOf(time.Duration(0)):
		if v.Int() != 0 {
			s = time.Duration(v.Int()).String()
		}
	case v.Kind() == reflect.Slice:
		if v.Len() > 0 {
			s = fmt.Sprint(v.Interface())
		}
	case v.Kind() == reflect.Bool:
		s = fmt.Sprint(v.Bool())
	default:
		if !v.IsZero() {
			s = fmt.Sprint(v.Interface())
		}
	}
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
