//! An in-process fake of the Kubernetes API server's `scale` subresource, for
//! testing the real `kube` client over real HTTP (no registry here ships an API
//! server binary). It serves GET; PATCH as merge patch and JSON patch; PUT;
//! `resourceVersion` with 409 on a stale one; 404 for unknown objects, and by
//! name: `forbidden` (403), `broken` (500), `slow` (3 s). Every request is logged.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fake cluster's state, shared with the test.
#[derive(Default)]
pub struct Cluster {
    /// name -> (spec.replicas, resourceVersion)
    pub objects: BTreeMap<String, (i64, u64)>,
    /// (method, path, body) of every request.
    pub log: Vec<(String, String, String)>,
    /// Names whose next write fails with 409 as if someone else wrote first.
    pub conflict_once: Vec<String>,
}

pub type Shared = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

fn scale_json(name: &str, replicas: i64, rv: u64) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": rv.to_string()},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "selector": format!("app={name}")}
    })
}

fn handle(
    cluster: &Shared,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let mut c = cluster.lock().unwrap();
    c.log
        .push((method.to_owned(), path.to_owned(), body.to_owned()));
    let parts: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    // apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/scale
    let ["apis", _, _, "namespaces", _, _, name, "scale"] = parts.as_slice() else {
        return status(404, "NotFound", &format!("no route for {path}"));
    };
    let name = name.to_string();
    match name.as_str() {
        "forbidden" => {
            return status(
                403,
                "Forbidden",
                "deployments.apps \"forbidden\" is forbidden: cannot get resource \"deployments/scale\"",
            );
        }
        "broken" => return status(500, "InternalError", "etcd is unhappy"),
        "slow" => {
            drop(c);
            std::thread::sleep(Duration::from_secs(3));
            return status(504, "Timeout", "too slow");
        }
        _ => {}
    }
    let Some(&(replicas, rv)) = c.objects.get(&name) else {
        return status(
            404,
            "NotFound",
            &format!("deployments.apps \"{name}\" not found"),
        );
    };
    match method {
        "GET" => (200, scale_json(&name, replicas, rv)),
        "PATCH" | "PUT" => {
            if let Some(i) = c.conflict_once.iter().position(|n| *n == name) {
                c.conflict_once.remove(i);
                // Someone else scaled it in the meantime.
                c.objects.insert(name.clone(), (replicas + 1, rv + 1));
                return status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let sent_rv = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(|v| v.parse::<u64>().unwrap_or(0));
            if sent_rv.is_some_and(|v| v != rv) {
                return status(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
            let new = if method == "PUT" || content_type.contains("merge-patch") {
                body.pointer("/spec/replicas").and_then(Value::as_i64)
            } else if content_type.contains("json-patch") {
                body.as_array()
                    .and_then(|ops| ops.iter().find(|op| op["path"] == "/spec/replicas"))
                    .and_then(|op| op["value"].as_i64())
            } else {
                return (
                    415,
                    json!({"kind": "Status", "code": 415, "message": format!("unsupported media type {content_type}")}),
                );
            };
            let Some(new) = new else {
                return status(422, "Invalid", "spec.replicas missing");
            };
            c.objects.insert(name.clone(), (new, rv + 1));
            (200, scale_json(&name, new, rv + 1))
        }
        _ => status(405, "MethodNotAllowed", method),
    }
}

/// Serve the fake API on 127.0.0.1; returns the port.
pub fn start_fake(cluster: Shared) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut it = line.split_whitespace();
                    let (method, path) = (
                        it.next().unwrap_or("").to_owned(),
                        it.next().unwrap_or("").to_owned(),
                    );
                    let (mut length, mut content_type) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap_or((h, ""));
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => length = v.trim().parse().unwrap_or(0),
                            "content-type" => content_type = v.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (code, value) = handle(
                        &cluster,
                        &method,
                        &path,
                        &content_type,
                        &String::from_utf8_lossy(&body),
                    );
                    let text = value.to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    port
}
