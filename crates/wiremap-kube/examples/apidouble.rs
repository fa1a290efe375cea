//! Serves Kubernetes objects from `kubectl get … -o json` files through the in-repo API
//! double (list+watch, bookmarks), so `wiremap capture --kube-url` can be tried, and tested,
//! without a cluster.
//!
//!     cargo run -p wiremap-kube --example apidouble -- 127.0.0.1:18443 objects.json…
#[path = "../tests/double/mod.rs"]
mod double;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().ok_or("usage: apidouble ADDR FILE…")?;
    let d = double::Double::default();
    for f in args {
        let text = std::fs::read_to_string(&f)?;
        d.load(&serde_json::from_str(&text)?);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("apidouble: serving on http://{}", listener.local_addr()?);
        axum::serve(listener, d.router()).await
    })?;
    Ok(())
}
