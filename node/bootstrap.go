package node

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapExpect waits until memberlist shows BootstrapExpect members that
// were all started with the same --bootstrap-expect, checks that none of
// them already belongs to a Raft cluster, and bootstraps Raft with exactly
// those members: the first RaftVoters (by node id) as voters, the rest as
// non-voters. Every expecting member computes the same configuration from
// the same member set, so bootstrapping on each of them is safe (identical
// configurations, like Consul's bootstrap_expect). The routing table is not
// written here: the elected leader proposes InitRouting through the log.
func (n *Node) bootstrapExpect() {
	defer n.wg.Done()
	expect := n.cfg.BootstrapExpect
	tick := time.NewTicker(n.cfg.Timing.GossipInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if _, id := n.raft.LeaderWithID(); id != "" {
			return // someone already formed the cluster and added us
		}
		var peers []gossipMember
		for _, g := range n.gossipMembers() {
			if g.Meta.BootstrapExpect == expect {
				peers = append(peers, g)
			}
		}
		if len(peers) < expect {
			continue
		}
		if len(peers) > expect {
			n.log.Error("more members than --bootstrap-expect are gossiping with the same value; not bootstrapping",
				"expect", expect, "seen", len(peers))
			continue
		}
		if n.peerHasRaftState(peers) {
			n.log.Info("a peer already has Raft state; waiting to be added instead of bootstrapping")
			continue
		}
		slices.SortFunc(peers, func(a, b gossipMember) int {
			if a.ID < b.ID {
				return -1
			}
			if a.ID > b.ID {
				return 1
			}
			return 0
		})
		var conf raft.Configuration
		for i, p := range peers {
			suffrage := raft.Nonvoter
			if i < n.cfg.RaftVoters {
				suffrage = raft.Voter
			}
			conf.Servers = append(conf.Servers, raft.Server{
				Suffrage: suffrage, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Meta.ClusterAddr),
			})
		}
		if !slices.ContainsFunc(conf.Servers, func(s raft.Server) bool {
			return s.Suffrage == raft.Voter && string(s.ID) == string(n.cfg.NodeID)
		}) {
			// Raft bootstraps only voters; the voters' leader brings this
			// non-voter up to date since it is in their configuration.
			n.log.Info("bootstrap configuration formed; waiting for the voters as a non-voter", "members", len(conf.Servers))
			return
		}
		err := n.raft.BootstrapCluster(conf).Error()
		switch {
		case err == nil:
			n.log.Info("bootstrapped raft", "members", len(conf.Servers), "voters", min(len(conf.Servers), n.cfg.RaftVoters))
		case err == raft.ErrCantBootstrap:
			n.log.Info("raft already has state; not bootstrapping")
		default:
			n.log.Error("raft bootstrap failed", "err", err)
			continue
		}
		return
	}
}

// peerHasRaftState asks each peer whether it already holds Raft state (was
// part of a cluster). Unreachable peers count as "no" only if they answer
// nothing at all, in which case we retry later.
func (n *Node) peerHasRaftState(peers []gossipMember) bool {
	for _, p := range peers {
		if p.ID == n.cfg.NodeID {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var resp bootstrapInfoResponse
		err := n.rpc.Call(ctx, p.Meta.ClusterAddr, methodBootstrapInfo, &bootstrapInfoRequest{}, &resp)
		cancel()
		if err != nil {
			n.log.Debug("bootstrap info", "peer", p.ID, "err", err)
			return true // cannot tell yet: do not bootstrap on a guess
		}
		if resp.HasState {
			return true
		}
	}
	return false
}
