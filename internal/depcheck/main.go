package main
import (
 _ "github.com/hashicorp/raft"
 _ "github.com/hashicorp/raft-boltdb/v2"
 _ "github.com/hashicorp/memberlist"
 _ "github.com/vmihailenco/msgpack/v5"
 _ "github.com/spf13/cobra"
 _ "pgregory.net/rapid"
 _ "go.uber.org/goleak"
 _ "github.com/cespare/xxhash/v2"
 _ "go.yaml.in/yaml/v3"
)
func main(){}
