//! The load balancer of the run, which is granary's public URL: an HTTP/1.1 listener on
//! 127.0.0.1 that sends each new request to the next node in turn (round robin), with no
//! sticky sessions: it reads one request, forwards it to the node with `Connection: close`,
//! passes the node's answer back and closes the connection, so that a client's next request
//! is a new connection and goes to the next node. It keeps a log of which node answered what
//! ([`Balancer::landed`]), so that a scenario can say where its requests went.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head read.
const MAX_HEAD: usize = 64 * 1024;

/// One request the balancer forwarded.
#[derive(Debug, Clone)]
pub struct Landed {
    /// The node (index into the node ports) it went to.
    pub node: usize,
    /// Its method.
    pub method: String,
    /// Its path and query.
    pub target: String,
}

struct Inner {
    nodes: Vec<u16>,
    next: AtomicUsize,
    log: Mutex<Vec<Landed>>,
}

/// A running balancer; it stops with the runtime.
#[derive(Clone)]
pub struct Balancer {
    inner: Arc<Inner>,
    /// `http://127.0.0.1:<port>`: the public URL of every node.
    pub url: String,
}

impl Balancer {
    /// Listens on 127.0.0.1:`port` and balances over the nodes listening on `nodes`.
    pub async fn start(port: u16, nodes: Vec<u16>) -> Result<Balancer, String> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("the balancer cannot listen on 127.0.0.1:{port}: {e}"))?;
        let inner = Arc::new(Inner {
            nodes,
            next: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let accepting = inner.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(accepting.clone(), stream));
            }
        });
        Ok(Balancer {
            inner,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The node the next request will go to.
    pub fn next_node(&self) -> usize {
        self.inner.next.load(Ordering::SeqCst) % self.inner.nodes.len()
    }

    /// The node that took the last request of `method` whose target starts with `prefix`.
    pub fn landed(&self, method: &str, prefix: &str) -> Option<usize> {
        self.log()
            .iter()
            .rev()
            .find(|l| l.method == method && l.target.starts_with(prefix))
            .map(|l| l.node)
    }

    /// Every request forwarded so far, in order of arrival.
    pub fn log(&self) -> Vec<Landed> {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A request's head (request line and headers, without the blank line) and its body.
async fn read_request(stream: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed the connection".into());
        }
        if buffer.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some() {
        return Err("chunked request bodies are not supported by this balancer".into());
    }
    let length = header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the client closed the connection mid-body".into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok((head, body))
}

/// The head to send the node: the client's, with `Connection: close` instead of its own
/// connection headers.
fn upstream_head(head: &str) -> String {
    let mut lines = head.lines();
    let mut out = String::new();
    out.push_str(lines.next().unwrap_or_default());
    out.push_str("\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if ["connection", "keep-alive", "proxy-connection"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

async fn answer_error(stream: &mut TcpStream, status: &str, why: &str) {
    let body = format!("balancer: {why}\n");
    let text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn handle(inner: Arc<Inner>, mut client: TcpStream) {
    let (head, body) = match read_request(&mut client).await {
        Ok(request) => request,
        Err(why) => return answer_error(&mut client, "400 Bad Request", &why).await,
    };
    let node = inner.next.fetch_add(1, Ordering::SeqCst) % inner.nodes.len();
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    inner
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Landed {
            node,
            method: words.next().unwrap_or_default().to_string(),
            target: words.next().unwrap_or_default().to_string(),
        });
    let port = inner.nodes[node];
    let mut upstream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(upstream) => upstream,
        Err(e) => {
            let why = format!("node {node} (127.0.0.1:{port}) cannot be reached: {e}");
            return answer_error(&mut client, "502 Bad Gateway", &why).await;
        }
    };
    let sent = async {
        upstream.write_all(upstream_head(&head).as_bytes()).await?;
        upstream.write_all(&body).await?;
        upstream.flush().await
    };
    if let Err(e) = sent.await {
        let why = format!("node {node} did not take the request: {e}");
        return answer_error(&mut client, "502 Bad Gateway", &why).await;
    }
    // The node closes the connection after its answer (Connection: close).
    let _ = tokio::io::copy(&mut upstream, &mut client).await;
    let _ = client.shutdown().await;
}
