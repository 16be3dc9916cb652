package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `version -o json` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Commit   string `json:"commit,omitempty"`
	Platform string `json:"platform"`
}

func newVersionCmd(d *Deps) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of olric-raft",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Version: d.Version, Go: runtime.Version(), Commit: revision(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			switch output {
			case "json":
				b, err := json.MarshalIndent(v, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(d.Stdout, "%s\n", b)
				return err
			case "table", "":
				commit := ""
				if v.Commit != "" {
					commit = ", commit " + v.Commit
				}
				_, err := fmt.Fprintf(d.Stdout, "olric-raft %s (%s%s, %s)\n", v.Version, v.Go, commit, v.Platform)
				return err
			}
			return &usageError{err: fmt.Errorf("-o %q: want table or json", output)}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// revision returns the build's VCS commit (12 hex digits), if stamped.
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			rev := s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
			return rev
		}
	}
	return ""
}
