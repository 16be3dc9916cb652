package node

// RaftServerIDs returns the IDs in n's Raft configuration (tests only).
func RaftServerIDs(n *Node) []string {
	servers, _, err := n.raftServers()
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(servers))
	for _, s := range servers {
		ids = append(ids, string(s.ID))
	}
	return ids
}

// GossipMemberIDs returns the live members of n's memberlist view (tests
// only).
func GossipMemberIDs(n *Node) []string {
	var ids []string
	for _, g := range n.gossipMembers() {
		ids = append(ids, string(g.ID))
	}
	return ids
}
