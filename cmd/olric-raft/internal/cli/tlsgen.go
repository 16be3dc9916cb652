package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/internal/tlsgen"
	"github.com/olric-raft/olric-raft/metadata"
)

// tlsGenResult is what 'tls gen -o json' prints.
type tlsGenResult struct {
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
}

func newTLSCmd(d *Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Make TLS material for a cluster",
		Args:  noUnknownCommand,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newTLSGenCmd(d))
	return cmd
}

func newTLSGenCmd(d *Deps) *cobra.Command {
	var (
		dir, output   string
		members       []string
		hosts         []string
		days, caDays  int
		force         bool
		defaultHostsS = strings.Join(tlsgen.DefaultHosts, ",")
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Write a new CA and a certificate per member (for --tls-cert, --tls-key, --tls-ca)",
		Long: `gen makes a certificate authority and, for each --members name, a certificate
signed by it, and writes them to --dir:

  ca.pem, ca-key.pem             the CA (give ca.pem to every member as --tls-ca,
                                 and to the CLI as --tls-ca; keep ca-key.pem offline)
  NAME.pem, NAME-key.pem         the member's certificate and key (--tls-cert,
                                 --tls-key)

Keys are ECDSA P-256, written with mode 0600. Each member certificate is good
for TLS server and client authentication and names the member and --hosts
(IP addresses or DNS names the HTTP and RESP clients use to reach it; default
127.0.0.1, ::1 and localhost). Existing files are not overwritten without
--force.

  olric-raft tls gen --dir ./tls --members a,b,c --hosts 10.0.0.1,10.0.0.2,10.0.0.3,localhost`,
		Args: args(cobra.NoArgs),
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "", "directory to write to (created if missing)")
	fs.StringSliceVar(&members, "members", nil, "member names, comma-separated: one certificate each")
	fs.StringSliceVar(&hosts, "hosts", tlsgen.DefaultHosts, "SANs of every member certificate besides its name (replaces the default "+defaultHostsS+")")
	fs.IntVar(&days, "days", 365, "validity of the member certificates, in days")
	fs.IntVar(&caDays, "ca-days", 3650, "validity of the CA, in days")
	fs.BoolVar(&force, "force", false, "overwrite existing files")
	fs.StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var problems []string
		if dir == "" {
			problems = append(problems, "--dir is required")
		}
		var names []string
		seen := map[string]bool{}
		for _, m := range members {
			m = strings.TrimSpace(m)
			if m == "" {
				continue
			}
			switch err := metadata.ValidateNodeID(metadata.NodeID(m)); {
			case err != nil:
				problems = append(problems, fmt.Sprintf("--members: %v", err))
			case m == "ca" || strings.HasPrefix(m, "."):
				problems = append(problems, fmt.Sprintf("--members: %q cannot be a member's file name", m))
			case seen[m]:
				problems = append(problems, fmt.Sprintf("--members: %q is given twice", m))
			default:
				names = append(names, m)
			}
			seen[m] = true
		}
		if len(seen) == 0 {
			problems = append(problems, "--members is required (e.g. --members a,b,c)")
		}
		var sans []string
		for _, h := range hosts {
			if h = strings.TrimSpace(h); h != "" {
				sans = append(sans, h)
			}
		}
		if days < 1 {
			problems = append(problems, fmt.Sprintf("--days %d must be at least 1", days))
		}
		if caDays < days {
			problems = append(problems, fmt.Sprintf("--ca-days %d must be at least --days %d", caDays, days))
		}
		if output != "table" && output != "json" {
			problems = append(problems, fmt.Sprintf("--output %q must be table or json", output))
		}
		if len(problems) > 0 {
			return &usageError{err: errors.New(strings.Join(problems, "; "))}
		}

		files := []string{"ca.pem", "ca-key.pem"}
		for _, n := range names {
			files = append(files, n+".pem", n+"-key.pem")
		}
		if !force {
			var exist []string
			for _, f := range files {
				if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
					exist = append(exist, f)
				}
			}
			if len(exist) > 0 {
				return &cliError{Code: "exists", Message: fmt.Sprintf("%s already holds %s", dir, strings.Join(exist, ", ")),
					Hint: "nothing was written; use another --dir, or --force to replace them (members keep using the old files until restarted or sent SIGHUP)"}
			}
		}

		day := 24 * time.Hour
		ca, err := tlsgen.NewCA("olric-raft CA", time.Duration(caDays)*day)
		if err != nil {
			return err
		}
		contents := map[string][]byte{"ca.pem": ca.CertPEM, "ca-key.pem": ca.KeyPEM}
		notBefore := time.Now().Add(-time.Minute)
		for _, n := range names {
			c, err := ca.Issue(tlsgen.LeafOptions{Name: n, Hosts: sans, NotBefore: notBefore, NotAfter: notBefore.Add(time.Duration(days) * day)})
			if err != nil {
				return err
			}
			contents[n+".pem"], contents[n+"-key.pem"] = c.CertPEM, c.KeyPEM
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return &cliError{Code: "write", Message: err.Error()}
		}
		res := tlsGenResult{Dir: dir}
		for _, f := range files {
			mode := os.FileMode(0o644)
			if strings.HasSuffix(f, "-key.pem") {
				mode = 0o600
			}
			path := filepath.Join(dir, f)
			if err := writeFileAtomic(path, contents[f], mode); err != nil {
				return &cliError{Code: "write", Message: err.Error(),
					Hint: fmt.Sprintf("written so far: %s", orDash(res.Files))}
			}
			res.Files = append(res.Files, path)
		}
		o := &operator{opFlags: opFlags{output: output}, d: d, cmd: cmd}
		return o.print(res, func(w *tabw) {
			for _, f := range res.Files {
				w.line("wrote %s", f)
			}
			w.line("members: --tls-cert %s --tls-key %s --tls-ca %s",
				filepath.Join(dir, "NAME.pem"), filepath.Join(dir, "NAME-key.pem"), filepath.Join(dir, "ca.pem"))
		})
	}
	return cmd
}

// writeFileAtomic writes data to a temporary file in path's directory with
// mode, then renames it over path, so a reader (a member reloading on
// SIGHUP) never sees half a file and a key is never readable by others,
// not even briefly.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	return nil
}
