//! The admin HTTP endpoint: `/metrics` (Prometheus exposition), `/healthz`
//! (the process is up), `/readyz` (every scaler has completed a tick) and the
//! circuit breaker's `/scalers/NAME/breaker`. A deliberately small HTTP/1.1
//! server: one response per connection. It serves the controller's
//! [`Handle`], and runs as a [`Service`] beside the scalers.

use crate::controller::{Controls, Handle, Metrics, Service};
use crate::guard::{BreakerMode, BreakerSetting};
use futures_core::future::BoxFuture;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The admin server on `listen` (`IP:PORT`), started with the scalers.
#[derive(Debug, Clone)]
pub struct AdminServer {
    listen: String,
}

impl AdminServer {
    pub fn new(listen: &str) -> Self {
        AdminServer {
            listen: listen.to_owned(),
        }
    }
}

impl Service for AdminServer {
    fn start(self: Box<Self>, handle: Handle) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            match tokio::net::TcpListener::bind(&self.listen).await {
                Ok(listener) => {
                    tracing::info!(address = %self.listen, "serving /metrics, /healthz and /readyz");
                    serve(listener, handle.metrics, handle.controls).await;
                }
                Err(e) => {
                    tracing::error!(address = %self.listen, error = %e, "cannot serve the admin endpoint; scaling continues")
                }
            }
        })
    }
}

/// `POST /scalers/NAME/breaker?mode=freeze&seconds=600` or `DELETE /scalers/NAME/breaker`.
fn breaker_request(controls: &Controls, method: &str, path: &str) -> (&'static str, String) {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let parts: Vec<&str> = route.trim_matches('/').split('/').collect();
    let ["scalers", name, "breaker"] = parts.as_slice() else {
        return (
            "404 Not Found",
            "try /metrics, /healthz, /readyz or /scalers/NAME/breaker\n".into(),
        );
    };
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let setting = match method {
        "DELETE" => None,
        "POST" => {
            let mode = match param("mode") {
                Some("pause") => BreakerMode::Pause,
                Some("freeze") => BreakerMode::Freeze,
                Some("scale-in-only") => BreakerMode::ScaleInOnly,
                Some("scale-out-only") => BreakerMode::ScaleOutOnly,
                other => {
                    return (
                        "400 Bad Request",
                        format!(
                            "mode must be pause, freeze, scale-in-only or scale-out-only (got {other:?})\n"
                        ),
                    );
                }
            };
            let until_ms = match param("seconds").map(str::parse::<u64>) {
                Some(Ok(s)) if s <= crate::config::MAX_GUARD_SECONDS => {
                    Some(crate::controller::wall_clock_ms() + s * 1000)
                }
                Some(Ok(_)) => {
                    return (
                        "400 Bad Request",
                        format!(
                            "seconds must be at most {} (a week); leave it out for no expiry\n",
                            crate::config::MAX_GUARD_SECONDS
                        ),
                    );
                }
                Some(Err(_)) => {
                    return ("400 Bad Request", "seconds must be a whole number\n".into());
                }
                None => None,
            };
            Some(BreakerSetting {
                mode,
                until_ms,
                automatic: false,
            })
        }
        _ => {
            return (
                "405 Method Not Allowed",
                "use POST to set the breaker, DELETE to clear it\n".into(),
            );
        }
    };
    if controls.request(name, setting) {
        (
            "202 Accepted",
            format!(
                "breaker {} for {name}: applies at its next tick\n",
                if setting.is_some() { "set" } else { "cleared" }
            ),
        )
    } else {
        ("404 Not Found", format!("no scaler named {name:?}\n"))
    }
}

/// Serve the admin endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics, controls: Controls) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let controls = controls.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let mut words = request.split_whitespace();
            let method = words.next().unwrap_or("GET");
            let path = words.next().unwrap_or("/");
            let (status, content_type, body) = match path {
                p if p.starts_with("/scalers/") => {
                    let (status, body) = breaker_request(&controls, method, p);
                    (status, "text/plain", body)
                }
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                "/readyz" if metrics.ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain",
                    "not every scaler has ticked yet\n".to_owned(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "try /metrics, /healthz or /readyz\n".to_owned(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_requests_are_checked_before_they_reach_a_scaler() {
        let controls = Controls::new(vec!["llm-chat".into()]);
        let cases = [
            (
                "POST",
                "/scalers/llm-chat/breaker?mode=melt",
                "400 Bad Request",
            ),
            (
                "POST",
                "/scalers/llm-chat/breaker?mode=freeze&seconds=soon",
                "400 Bad Request",
            ),
            // Would overflow the expiry: bounded to a week.
            (
                "POST",
                "/scalers/llm-chat/breaker?mode=freeze&seconds=18446744073709551615",
                "400 Bad Request",
            ),
            (
                "POST",
                "/scalers/ghost/breaker?mode=freeze",
                "404 Not Found",
            ),
            ("GET", "/scalers/llm-chat/breaker", "405 Method Not Allowed"),
            ("POST", "/scalers/llm-chat/other", "404 Not Found"),
        ];
        for (method, path, status) in cases {
            assert_eq!(
                breaker_request(&controls, method, path).0,
                status,
                "{method} {path}"
            );
        }
        assert_eq!(
            controls.take("llm-chat"),
            None,
            "nothing invalid was queued"
        );
        let (status, _) = breaker_request(
            &controls,
            "POST",
            "/scalers/llm-chat/breaker?mode=pause&seconds=60",
        );
        assert_eq!(status, "202 Accepted");
        let setting = controls.take("llm-chat").flatten().expect("queued");
        assert_eq!(setting.mode, BreakerMode::Pause);
        assert!(setting.until_ms.is_some());
        assert_eq!(controls.take("llm-chat"), None, "applied once");
        let (status, _) = breaker_request(&controls, "DELETE", "/scalers/llm-chat/breaker");
        assert_eq!(
            (status, controls.take("llm-chat")),
            ("202 Accepted", Some(None))
        );
    }
}
