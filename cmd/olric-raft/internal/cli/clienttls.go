package cli

import (
	"crypto/tls"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/olric-raft/olric-raft/client"
)

// clientTLSFlags are the TLS flags of the commands that talk to members
// (--address https://...): the CA that the member's certificate must chain
// to, and optionally a client certificate.
type clientTLSFlags struct {
	fs            *pflag.FlagSet
	ca, cert, key string
}

// addClientTLSFlags defines --tls-ca, --tls-cert and --tls-key on fs.
func addClientTLSFlags(fs *pflag.FlagSet) *clientTLSFlags {
	f := &clientTLSFlags{fs: fs}
	fs.StringVar(&f.ca, "tls-ca", "", "PEM CA certificate to verify https members with (default: the system's roots; env "+envName("tls-ca")+")")
	fs.StringVar(&f.cert, "tls-cert", "", "PEM client certificate to present over https, with --tls-key (env "+envName("tls-cert")+")")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert (env "+envName("tls-key")+")")
	return f
}

// config resolves the flags (flag > env) and loads the files: nil when no
// TLS flag is set, and the problems found, for a usage error.
func (f *clientTLSFlags) config(lookupEnv func(string) (string, bool)) (*tls.Config, []string) {
	var problems []string
	for _, err := range applyEnv(f.fs, lookupEnv, "tls-ca", "tls-cert", "tls-key") {
		problems = append(problems, err.Error())
	}
	if f.ca == "" && f.cert == "" && f.key == "" {
		return nil, problems
	}
	cfg, err := client.LoadTLSConfig(client.TLSFiles{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key})
	if err != nil {
		problems = append(problems, fmt.Sprintf("--tls-ca, --tls-cert, --tls-key: %v", err))
	}
	return cfg, problems
}
