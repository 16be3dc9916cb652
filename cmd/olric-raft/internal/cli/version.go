package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd(d *Deps) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of olric-raft",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(d.Stdout, "olric-raft %s (%s%s, %s/%s)\n", d.Version, runtime.Version(), revision(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}

// revision returns ", commit <hash>" from the build's VCS stamp, if any.
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
			return ", commit " + rev
		}
	}
	return ""
}
