package resp

import (
	"io"
	"net"
)

// maxClientsError is redis-server's answer to a connection over maxclients.
const maxClientsError = "-ERR max number of clients reached\r\n"

// RejectConnection answers a connection the server will not serve (over
// its connection limit, see internal/connlimit) as redis-server does over
// maxclients: one error, then the caller closes c. Redis clients report
// the error on their next command.
func RejectConnection(c net.Conn) {
	_, _ = io.WriteString(c, maxClientsError)
}
