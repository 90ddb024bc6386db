//! `oci://HOST/REPO:TAG` (or `@sha256:…`) policies: pulled from an OCI
//! distribution registry with the `oci-client` crate, checked, and cached in
//! the registry's blob store, so a registry that is down later does not stop
//! a restart. The artifact is one layer holding the component (as `oras
//! push` or Kubewarden's `kwctl push` make it).
//!
//! What is checked: the manifest's digest (when the reference pins one), the
//! layer's declared size against the module size limit before a byte is
//! read, the bytes read against that limit as they arrive, and the layer's
//! SHA-256 against its descriptor.

use std::pin::Pin;
use std::task::{Context, Poll};

/// Media types a policy layer may have.
pub const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
    "application/wasm",
];

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    #[error(
        "`{reference}` is not an OCI reference ({message}): write oci://HOST[:PORT]/REPO:TAG or oci://HOST/REPO@sha256:HEX"
    )]
    BadReference { reference: String, message: String },
    #[error("pulling {reference}: {message}")]
    Pull { reference: String, message: String },
    #[error(
        "{reference}: the manifest has {found} layers of a wasm media type; a policy artifact has exactly one (media types: {types})"
    )]
    Layers {
        reference: String,
        found: usize,
        types: String,
    },
    #[error("{reference}: the layer is {size} bytes, over the limit of {max}")]
    TooLarge {
        reference: String,
        size: u64,
        max: usize,
    },
    #[error("{reference}: {what} digest is {actual}, not {expected}")]
    DigestMismatch {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
}

/// A pulled policy: the manifest's digest, and the component's.
#[derive(Debug)]
pub struct Pulled {
    pub manifest_digest: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

/// Whether `host` is this machine: served over plain HTTP (a registry on
/// 127.0.0.1 for tests and local development); every other host is HTTPS.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None => registry.split_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Pull `reference` (without `oci://`), at most `max_bytes` of component.
/// Blocking: it runs on its own thread and runtime, so it may be called
/// from inside another runtime (a reload) as from outside one (`validate`).
/// Credentials, when the registry needs them, come from
/// `WASMSCALE_OCI_USERNAME` and `WASMSCALE_OCI_PASSWORD`.
pub fn pull(reference: &str, max_bytes: usize) -> Result<Pulled, OciError> {
    let owned = reference.to_owned();
    let worker = std::thread::Builder::new()
        .name("oci-pull".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| OciError::Pull {
                    reference: owned.clone(),
                    message: format!("cannot start a runtime: {e}"),
                })?;
            runtime.block_on(pull_async(&owned, max_bytes))
        });
    let fail = |message: String| OciError::Pull {
        reference: reference.to_owned(),
        message,
    };
    match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err(fail("the pull panicked".into()))),
        Err(e) => Err(fail(format!("cannot start a thread: {e}"))),
    }
}

async fn pull_async(text: &str, max_bytes: usize) -> Result<Pulled, OciError> {
    let reference: oci_client::Reference =
        text.parse()
            .map_err(|e: oci_client::ParseError| OciError::BadReference {
                reference: text.to_owned(),
                message: e.to_string(),
            })?;
    let fail = |e: oci_client::errors::OciDistributionError| OciError::Pull {
        reference: text.to_owned(),
        message: e.to_string(),
    };
    let registry = reference.resolve_registry().to_owned();
    let protocol = if is_loopback(&registry) {
        oci_client::client::ClientProtocol::Http
    } else {
        oci_client::client::ClientProtocol::Https
    };
    crate::tls::install_provider();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol,
        read_timeout: Some(std::time::Duration::from_secs(30)),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    });
    let auth = match (
        std::env::var("WASMSCALE_OCI_USERNAME"),
        std::env::var("WASMSCALE_OCI_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => oci_client::secrets::RegistryAuth::Basic(user, password),
        _ => oci_client::secrets::RegistryAuth::Anonymous,
    };
    let (manifest, manifest_digest) = client
        .pull_image_manifest(&reference, &auth)
        .await
        .map_err(fail)?;
    if let Some(pinned) = reference.digest()
        && pinned != manifest_digest
    {
        return Err(OciError::DigestMismatch {
            reference: text.to_owned(),
            what: "the manifest's",
            expected: pinned.to_owned(),
            actual: manifest_digest,
        });
    }
    let layers: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| LAYER_MEDIA_TYPES.contains(&l.media_type.as_str()))
        .collect();
    let [layer] = layers.as_slice() else {
        return Err(OciError::Layers {
            reference: text.to_owned(),
            found: layers.len(),
            types: LAYER_MEDIA_TYPES.join(", "),
        });
    };
    if layer.size < 0 || layer.size as u64 > max_bytes as u64 {
        return Err(OciError::TooLarge {
            reference: text.to_owned(),
            size: layer.size.max(0) as u64,
            max: max_bytes,
        });
    }
    let mut out = Bounded {
        bytes: Vec::with_capacity(layer.size as usize),
        max: max_bytes,
    };
    client
        .pull_blob(&reference, *layer, &mut out)
        .await
        .map_err(fail)?;
    let digest = super::digest_of(&out.bytes);
    if digest != layer.digest {
        return Err(OciError::DigestMismatch {
            reference: text.to_owned(),
            what: "the layer's",
            expected: layer.digest.clone(),
            actual: digest,
        });
    }
    Ok(Pulled {
        manifest_digest,
        digest,
        bytes: out.bytes,
    })
}

/// A sink that refuses to hold more than `max` bytes: a registry that
/// sends more than it declared stops at the limit.
struct Bounded {
    bytes: Vec<u8>,
    max: usize,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() + data.len() > self.max {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the layer is over the limit of {} bytes",
                self.max
            ))));
        }
        self.bytes.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_this_machine_is_served_over_plain_http() {
        for yes in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(super::is_loopback(yes), "{yes}");
        }
        for no in [
            "ghcr.io",
            "registry.example.com:5000",
            "10.0.0.1:5000",
            "127.example.com",
        ] {
            assert!(!super::is_loopback(no), "{no}");
        }
    }

    #[test]
    fn a_bad_reference_is_refused_before_any_network() {
        let e = super::pull("not a reference!", 1 << 20).unwrap_err();
        assert!(matches!(e, super::OciError::BadReference { .. }), "{e}");
    }
}
