//! turmoil's simulated sockets in the shapes the real code takes: a stream of accepted
//! connections for `Node::serve_incoming`, and a `Dialer` for gRPC channels (Raft peers and the
//! ledger client). Nothing else about the node or the client changes in simulation.

use futures::Stream;
use std::io;
use tally_proto::dial::{Dialer, Io};
use turmoil::net::{TcpListener, TcpStream};

/// Listens on `port` of the current simulated host and yields each accepted connection.
pub async fn incoming(port: u16) -> io::Result<impl Stream<Item = io::Result<TcpStream>>> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    }))
}

/// Connects gRPC channels through turmoil's network (`host:port`, host names resolved by the
/// simulation).
pub fn dialer() -> Dialer {
    Dialer::new(|addr| {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}
