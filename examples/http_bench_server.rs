//! A bench target for the HTTP layer alone: answers every request with a fixed 200
//! `{"status":"ok"}`, prints `listening on http://ADDR` and serves until killed. Used by
//! `bench/http_layer.sh` to compare the layer with nginx returning the same answer.
//!
//! Usage: `http_bench_server [ADDR]` (default 127.0.0.1:0, a free port).

use std::net::SocketAddr;
use std::sync::Arc;

use llmcallgateway::http::{self, Handler, Request, Responder, Response, Server, ServerConfig};

struct Fixed;

impl Handler for Fixed {
    fn handle(self: Arc<Self>, _req: &Arc<Request>, res: &mut Responder<'_>) {
        let _ = res.send(Response::new(
            200,
            "application/json",
            &b"{\"status\":\"ok\"}"[..],
        ));
    }
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_string())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let config = ServerConfig::default();
    let listener = http::bind(addr, config.backlog)?;
    let server = Server::start(listener, config, Arc::new(Fixed))?;
    println!("listening on http://{}", server.local_addr());
    loop {
        std::thread::park();
    }
}
