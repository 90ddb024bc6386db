//! The process's TLS provider, for every HTTP client (the Prometheus
//! source, the OCI puller, the CLI): reqwest is built without a provider of
//! its own (its default, aws-lc-rs, is a long C build), and refuses to build
//! a client until one is installed. ring is the one the Kubernetes client
//! already uses.

/// Install ring as the process's provider. Idempotent; call it before
/// building a client.
pub fn install_provider() {
    // An error only says a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
