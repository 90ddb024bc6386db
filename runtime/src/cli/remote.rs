//! `wasmscale policy ...` and `wasmscale scaler ...`: clients of a running
//! server's admin API, printing tables (or the API's JSON with `-o json`).

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the server is and how to print.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The admin API of a running `wasmscale run`.
    #[arg(long, global = true, default_value = "http://127.0.0.1:9464")]
    pub server: String,
    /// Output: a table for people, or the API's JSON.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Who makes the change, as the registry's history records it.
    #[arg(long, global = true, env = "WASMSCALE_USER")]
    pub user: Option<String>,
    /// The API token, when the server requires one (`wasmscale tenant token`).
    #[arg(long, global = true, env = "WASMSCALE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        name: String,
        #[arg(long)]
        tier: Option<String>,
    },
    /// Every tenant.
    List,
    /// Delete a tenant and revoke its tokens.
    Delete { name: String },
    /// Issue a token for a tenant; it is printed once, and only its hash is kept.
    Token {
        name: String,
        /// tenant-admin (its scalers: read and change) or viewer (read).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// When it expires: 12h, 30d (default: never).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// A tenant's tokens (ids, roles, dates; never their text).
    Tokens { name: String },
    /// Revoke one of a tenant's tokens, by id.
    Revoke { name: String, id: String },
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Upload a .wasm component as a new version of NAME (validated and compiled by the server).
    #[command(
        after_help = "Example:\n  wasmscale policy push ttft-guard target/ttft_guard.wasm --activate"
    )]
    Push {
        name: String,
        file: PathBuf,
        /// Activate it once uploaded (configure and smoke-evaluate for every scaler that follows NAME).
        #[arg(long)]
        activate: bool,
        /// Its signature, as `wasmscale policy sign` wrote it (FILE.sig).
        #[arg(long, value_name = "SIG")]
        signature: Option<PathBuf>,
    },
    /// Make an Ed25519 key pair for signing policies: KEY (secret) and KEY.pub.
    #[command(
        after_help = "Example:\n  wasmscale policy keygen --out release-key\n\n\
        Put the public key (release-key.pub) in a scaler's `require_signed_by`; keep the secret one secret."
    )]
    Keygen {
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
    },
    /// Sign a .wasm file's digest with a secret key: writes FILE.sig for `push --signature`.
    #[command(
        after_help = "Example:\n  wasmscale policy sign ttft_guard.wasm --key release-key\n  \
        wasmscale policy push ttft-guard ttft_guard.wasm --signature ttft_guard.wasm.sig"
    )]
    Sign {
        file: PathBuf,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// List the registry's policies and their active versions.
    List,
    /// Show a policy's versions, the scalers that follow it, and its history.
    Show { name: String },
    /// Make a version active: every scaler with `policy = "registry:NAME"` swaps to it.
    #[command(after_help = "Example:\n  wasmscale policy activate ttft-guard 3")]
    Activate {
        name: String,
        /// A version number or a sha256: digest.
        version: String,
    },
    /// Bring back the version active before the current one.
    Rollback { name: String },
    /// Evaluate VERSION beside the active one on every follower, never acting; see how often they differ.
    #[command(
        after_help = "Example:\n  wasmscale policy shadow ttft-guard 4 && wasmscale scaler status llm-chat"
    )]
    Shadow {
        name: String,
        /// A version number or a sha256: digest.
        version: String,
    },
    /// Stop the shadow.
    Unshadow { name: String },
    /// Make the shadow version active (the activation pipeline).
    Promote { name: String },
}

#[derive(Subcommand, Debug)]
pub enum ScalerCommand {
    /// The running scalers: policy, digest, counts.
    List,
    /// One scaler: what it runs, its breaker and counters.
    Status { name: String },
    /// A scaler's recent decisions, from the audit log.
    #[command(after_help = "Example:\n  wasmscale scaler decisions llm-chat --since 1h --limit 20")]
    Decisions {
        name: String,
        /// How far back: 90s, 15m, 1h, 2d.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Hold the scaler's count (its breaker in `pause`) until resumed or for --for.
    Pause {
        name: String,
        /// How long: 90s, 15m, 1h (default: until resumed).
        #[arg(long = "for")]
        duration: Option<String>,
    },
    /// Clear the scaler's breaker.
    Resume { name: String },
    /// Create or replace scalers from a file of `[[scaler]]` entries (TOML,
    /// as in the config file, or one JSON object), checked by the server as
    /// the config file's are, and kept across restarts.
    #[command(
        after_help = "Example:\n  wasmscale scaler apply chat.toml\n\nwhere chat.toml holds\n  [[scaler]]\n  name = \"chat\"\n  policy = \"registry:ttft-guard\"\n  min_replicas = 1\n  max_replicas = 16\n  source = { type = \"prometheus\", url = \"http://127.0.0.1:9090\" }\n  metrics = { ttft_p99_seconds = \"histogram_quantile(0.99, rate(ttft_bucket[1m]))\" }"
    )]
    Apply { file: PathBuf },
    /// Stop and forget a scaler created through the API (the config file's
    /// are changed in the file).
    Delete { name: String },
}

struct Client {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(args: &RemoteArgs) -> Result<Self> {
        crate::tls::install_provider();
        let mut headers = reqwest::header::HeaderMap::new();
        let user = args.user.clone().or_else(|| std::env::var("USER").ok());
        if let Some(user) = user.and_then(|u| reqwest::header::HeaderValue::from_str(&u).ok()) {
            headers.insert("x-wasmscale-user", user);
        }
        if let Some(token) = &args.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .context("the token has characters a header cannot carry")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        Ok(Client {
            base: args.server.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .default_headers(headers)
                .build()?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// Send a request; a non-2xx answer becomes an error with the API's
    /// message and hint.
    fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let base = self.base.clone();
        self.runtime.block_on(async move {
            let response = request.send().await.with_context(|| {
                format!("cannot reach the admin API at {base} (is `wasmscale run` serving it? see --server)")
            })?;
            let status = response.status();
            let raw = response.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
            if status.is_success() {
                return Ok(body);
            }
            let mut message = body["error"].as_str().unwrap_or("no message").to_owned();
            for p in body["problems"].as_array().into_iter().flatten() {
                message.push_str(&format!("\n  - {}", text(&p["message"])));
                if let Some(h) = p["hint"].as_str() {
                    message.push_str(&format!("\n    hint: {h}"));
                }
            }
            match body["hint"].as_str() {
                Some(hint) => bail!("{status}: {message}\nhint: {hint}"),
                None => bail!("{status}: {message}"),
            }
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A version as the API takes it: a number, or a `sha256:` digest.
fn version_value(version: &str) -> Value {
    version
        .parse::<u64>()
        .map_or_else(|_| Value::String(version.to_owned()), Value::from)
}

fn print(output: Output, value: &Value, table: impl FnOnce(&Value)) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => table(value),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_activated(a: &Value) {
    println!(
        "{} version {} is active ({})",
        text(&a["policy"]),
        text(&a["active"]),
        text(&a["digest"])
    );
    for s in a["swapped"].as_array().into_iter().flatten() {
        let state = match s["state_rejected"].as_str() {
            Some(why) => format!("state rejected, started fresh: {why}"),
            None => "state handed over".into(),
        };
        println!(
            "  swapped {} ({state}; paused {} µs)",
            text(&s["scaler"]),
            text(&s["pause_us"])
        );
    }
    for s in a["not_swapped"].as_array().into_iter().flatten() {
        println!(
            "  not swapped: {} (it stopped; it runs this version after a restart)",
            text(s)
        );
    }
}

/// Sign `file` with the secret key in `key`: `FILE.sig`, JSON.
fn sign(file: &std::path::Path, key: &std::path::Path) -> Result<PathBuf> {
    use crate::registry::signatures;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let secret = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the key {}", key.display()))?;
    let digest = crate::registry::digest_of(&bytes);
    let signature = signatures::sign(secret.trim(), &digest)?;
    let signer = signatures::public_of(secret.trim())?;
    let mut out = file.as_os_str().to_owned();
    out.push(".sig");
    let out = PathBuf::from(out);
    let body = serde_json::json!({ "digest": digest, "signer": signer, "signature": signature });
    std::fs::write(&out, format!("{body:#}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

pub fn policy(command: &PolicyCommand, args: &RemoteArgs) -> Result<ExitCode> {
    match command {
        PolicyCommand::Keygen { out } => {
            let (secret, public) = crate::registry::signatures::keygen()?;
            let mut public_path = out.as_os_str().to_owned();
            public_path.push(".pub");
            let public_path = PathBuf::from(public_path);
            {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new();
                f.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
                let mut file = f.open(out).with_context(|| {
                    format!("cannot create {} (it must not exist yet)", out.display())
                })?;
                writeln!(file, "{secret}")?;
            }
            std::fs::write(&public_path, format!("{public}\n"))?;
            println!(
                "secret key: {} (keep it secret)\npublic key: {} = {public}",
                out.display(),
                public_path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        PolicyCommand::Sign { file, key } => {
            let out = sign(file, key)?;
            println!("wrote {}", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let c = Client::new(args)?;
    let enc = |s: &str| s.replace('/', "%2F");
    match command {
        PolicyCommand::Keygen { .. } | PolicyCommand::Sign { .. } => {}
        PolicyCommand::Push {
            name,
            file,
            activate,
            signature,
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let size = bytes.len();
            let mut request = c
                .http
                .post(c.url(&format!("/v1/policies/{}/versions", enc(name))))
                .query(&[("activate", activate.to_string())])
                .header("content-type", "application/wasm");
            if let Some(sig) = signature {
                let text = std::fs::read_to_string(sig)
                    .with_context(|| format!("cannot read {}", sig.display()))?;
                let parsed: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a signature file", sig.display()))?;
                let (Some(signer), Some(signature)) =
                    (parsed["signer"].as_str(), parsed["signature"].as_str())
                else {
                    bail!("{} has no signer or signature", sig.display());
                };
                request = request
                    .header("x-wasmscale-signer", signer)
                    .header("x-wasmscale-signature", signature);
            }
            let v = c.send(request.body(bytes))?;
            print(args.output, &v, |v| {
                let ver = &v["version"];
                println!(
                    "pushed {name} version {} ({}, {size} bytes, {})",
                    text(&ver["version"]),
                    text(&ver["digest"]),
                    text(&ver["contract"])
                );
                if !v["activated"].is_null() {
                    print_activated(&v["activated"]);
                }
            });
        }
        PolicyCommand::List => {
            let v = c.send(c.http.get(c.url("/v1/policies")))?;
            print(args.output, &v, |v| {
                println!(
                    "{:<24} {:>8} {:>8} {:>8}",
                    "POLICY", "VERSIONS", "ACTIVE", "SHADOW"
                );
                for p in v.as_array().into_iter().flatten() {
                    println!(
                        "{:<24} {:>8} {:>8} {:>8}",
                        text(&p["name"]),
                        p["versions"].as_array().map_or(0, Vec::len),
                        text(&p["active"]),
                        text(&p["shadow"])
                    );
                }
            });
        }
        PolicyCommand::Show { name } => {
            let v = c.send(c.http.get(c.url(&format!("/v1/policies/{}", enc(name)))))?;
            print(args.output, &v, |v| {
                let p = &v["policy"];
                println!(
                    "{}  active {}  shadow {}",
                    text(&p["name"]),
                    text(&p["active"]),
                    text(&p["shadow"])
                );
                println!(
                    "{:>4}  {:<73} {:>9}  {:<24} {:<14} SIGNALS",
                    "VER", "DIGEST", "BYTES", "CONTRACT", "UPLOADER"
                );
                for ver in p["versions"].as_array().into_iter().flatten() {
                    let signals: Vec<String> = ver["signals"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    println!(
                        "{:>4}  {:<73} {:>9}  {:<24} {:<14} {}",
                        text(&ver["version"]),
                        text(&ver["digest"]),
                        text(&ver["size"]),
                        text(&ver["contract"]),
                        text(&ver["uploader"]),
                        signals.join(",")
                    );
                }
                let scalers: Vec<String> = v["scalers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                println!(
                    "followed by: {}",
                    if scalers.is_empty() {
                        "no running scaler".into()
                    } else {
                        scalers.join(", ")
                    }
                );
                for e in v["events"].as_array().into_iter().flatten() {
                    println!(
                        "  {}  {:<9} v{} by {} {}",
                        crate::audit::format_time(e["at_ms"].as_u64().unwrap_or(0)),
                        text(&e["kind"]),
                        text(&e["version"]),
                        text(&e["by"]),
                        e["detail"].as_str().unwrap_or("")
                    );
                }
            });
        }
        PolicyCommand::Activate { name, version } => {
            let v = c.send(
                c.http
                    .post(c.url(&format!("/v1/policies/{}/activate", enc(name))))
                    .json(&serde_json::json!({ "version": version_value(version) })),
            )?;
            print(args.output, &v, print_activated);
        }
        PolicyCommand::Shadow { name, version } => {
            let v = c.send(
                c.http
                    .put(c.url(&format!("/v1/policies/{}/shadow", enc(name))))
                    .json(&serde_json::json!({ "version": version_value(version) })),
            )?;
            print(args.output, &v, |v| {
                let scalers: Vec<String> = v["scalers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                println!(
                    "{name} version {} shadows the active one on: {}",
                    text(&v["shadow"]),
                    scalers.join(", ")
                );
                println!(
                    "compare with `wasmscale scaler status SCALER`; promote with `wasmscale policy promote {name}`"
                );
            });
        }
        PolicyCommand::Unshadow { name } => {
            let v = c.send(
                c.http
                    .delete(c.url(&format!("/v1/policies/{}/shadow", enc(name)))),
            )?;
            print(args.output, &v, |_| println!("{name}: no shadow"));
        }
        PolicyCommand::Promote { name } => {
            let v = c.send(
                c.http
                    .post(c.url(&format!("/v1/policies/{}/promote", enc(name)))),
            )?;
            print(args.output, &v, print_activated);
        }
        PolicyCommand::Rollback { name } => {
            let v = c.send(
                c.http
                    .post(c.url(&format!("/v1/policies/{}/rollback", enc(name)))),
            )?;
            print(args.output, &v, print_activated);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scaler(command: &ScalerCommand, args: &RemoteArgs) -> Result<ExitCode> {
    let c = Client::new(args)?;
    let enc = |s: &str| s.replace('/', "%2F");
    let row = |s: &Value| {
        let run = &s["running"];
        println!(
            "{:<24} {:<12} {:<32} {:>7} {:>7} {:>8} {}",
            text(&s["name"]),
            text(&s["tenant"]),
            text(&run["policy"]),
            text(&s["counters"]["current"]),
            text(&s["counters"]["desired"]),
            text(&s["counters"]["ticks"]),
            if run["breaker"].is_null() {
                String::new()
            } else {
                format!("breaker: {}", text(&run["breaker"]["mode"]))
            }
        );
    };
    let header = || {
        println!(
            "{:<24} {:<12} {:<32} {:>7} {:>7} {:>8}",
            "SCALER", "TENANT", "POLICY", "CURRENT", "DESIRED", "TICKS"
        )
    };
    match command {
        ScalerCommand::List => {
            let v = c.send(c.http.get(c.url("/v1/scalers")))?;
            print(args.output, &v, |v| {
                header();
                v.as_array().into_iter().flatten().for_each(row);
            });
        }
        ScalerCommand::Status { name } => {
            let v = c.send(c.http.get(c.url(&format!("/v1/scalers/{}", enc(name)))))?;
            print(args.output, &v, |v| {
                header();
                row(v);
                println!("digest: {}", text(&v["running"]["policy_digest"]));
                let sh = &v["running"]["shadow"];
                if !sh.is_null() {
                    println!(
                        "shadow {}: {} evaluations, {} failed, differed on {} of {} (max {} replicas apart)",
                        text(&sh["label"]),
                        text(&sh["evaluations"]),
                        text(&sh["failures"]),
                        text(&sh["differing"]),
                        text(&sh["compared"]),
                        text(&sh["max_abs_difference"])
                    );
                }
                if v["running"]["on_probation"].as_bool() == Some(true) {
                    println!("on probation: a swapped-in version is still watched");
                }
            });
        }
        ScalerCommand::Decisions { name, since, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            if let Some(s) = since {
                query.push(("since", s.clone()));
            }
            let v = c.send(
                c.http
                    .get(c.url(&format!("/v1/scalers/{}/decisions", enc(name))))
                    .query(&query),
            )?;
            match args.output {
                Output::Json => print(args.output, &v, |_| {}),
                Output::Table => {
                    for r in v.as_array().into_iter().flatten() {
                        match serde_json::from_value::<crate::audit::AuditRecord>(r.clone()) {
                            Ok(record) => println!("{}", crate::audit::explain(&record)),
                            Err(e) => println!("(a record this client cannot read: {e})"),
                        }
                    }
                }
            }
        }
        ScalerCommand::Pause { name, duration } => {
            let mut body = serde_json::json!({ "mode": "pause" });
            if let Some(d) = duration {
                body["for"] = d.clone().into();
            }
            let v = c.send(
                c.http
                    .put(c.url(&format!("/v1/scalers/{}/breaker", enc(name))))
                    .json(&body),
            )?;
            print(args.output, &v, |_| {
                println!("{name}: paused (applies at its next tick)")
            });
        }
        ScalerCommand::Apply { file } => {
            let mut applied = Vec::new();
            for entry in scaler_entries(file)? {
                let name = entry["name"]
                    .as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{}: every entry needs a `name`", file.display()))?;
                let v = c
                    .send(
                        c.http
                            .put(c.url(&format!("/v1/scalers/{}", enc(&name))))
                            .json(&entry),
                    )
                    .with_context(|| format!("scaler {name}"))?;
                if args.output == Output::Table {
                    println!("{name}: applied (policy {})", text(&v["policy"]));
                }
                applied.push(v);
            }
            if args.output == Output::Json {
                print(args.output, &Value::Array(applied), |_| {});
            }
        }
        ScalerCommand::Delete { name } => {
            c.send(c.http.delete(c.url(&format!("/v1/scalers/{}", enc(name)))))?;
            if args.output == Output::Table {
                println!("{name}: deleted");
            }
        }
        ScalerCommand::Resume { name } => {
            let v = c.send(
                c.http
                    .delete(c.url(&format!("/v1/scalers/{}/breaker", enc(name)))),
            )?;
            print(args.output, &v, |_| {
                println!("{name}: breaker cleared (applies at its next tick)")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `[[scaler]]` entries of a file for `scaler apply`: TOML (a config
/// file's `[[scaler]]` tables, or one bare table) or one JSON object.
fn scaler_entries(file: &std::path::Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") {
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        return Ok(match v {
            Value::Array(a) => a,
            v => vec![v],
        });
    }
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", file.display()))?;
    let entries = match table.get("scaler") {
        Some(toml::Value::Array(a)) => a.clone(),
        Some(_) => bail!("{}: `scaler` must be [[scaler]] tables", file.display()),
        None => vec![toml::Value::Table(table)],
    };
    if entries.is_empty() {
        bail!("{} holds no scaler", file.display());
    }
    entries
        .into_iter()
        .map(|e| Ok(serde_json::to_value(e)?))
        .collect()
}

pub fn tenant(command: &TenantCommand, args: &RemoteArgs) -> Result<ExitCode> {
    let c = Client::new(args)?;
    let enc = |s: &str| s.replace('/', "%2F");
    match command {
        TenantCommand::Create { name, tier } => {
            let v = c.send(
                c.http
                    .post(c.url("/v1/tenants"))
                    .json(&serde_json::json!({ "name": name, "tier": tier })),
            )?;
            print(args.output, &v, |_| println!("tenant {name} created"));
        }
        TenantCommand::List => {
            let v = c.send(c.http.get(c.url("/v1/tenants")))?;
            print(args.output, &v, |v| {
                println!("{:<24} {:<12}", "TENANT", "TIER");
                for t in v.as_array().into_iter().flatten() {
                    println!("{:<24} {:<12}", text(&t["name"]), text(&t["tier"]));
                }
            });
        }
        TenantCommand::Delete { name } => {
            c.send(c.http.delete(c.url(&format!("/v1/tenants/{}", enc(name)))))?;
            if args.output == Output::Table {
                println!("tenant {name} deleted; its tokens are revoked");
            }
        }
        TenantCommand::Token {
            name,
            role,
            expires,
            label,
        } => {
            let v = c.send(
                c.http
                    .post(c.url(&format!("/v1/tenants/{}/tokens", enc(name))))
                    .json(&serde_json::json!({ "role": role, "expires": expires, "label": label })),
            )?;
            print(args.output, &v, |v| {
                println!("{}", text(&v["token"]));
                eprintln!(
                    "a {} token for {name} (id {}): it is shown only now; keep it secret",
                    text(&v["info"]["role"]),
                    text(&v["info"]["id"])
                );
            });
        }
        TenantCommand::Tokens { name } => {
            let v = c.send(
                c.http
                    .get(c.url(&format!("/v1/tenants/{}/tokens", enc(name)))),
            )?;
            print(args.output, &v, |v| {
                println!("{:<18} {:<14} {:<10} LABEL", "ID", "ROLE", "STATE");
                for t in v.as_array().into_iter().flatten() {
                    let state = if t["revoked_ms"].is_null() {
                        "live"
                    } else {
                        "revoked"
                    };
                    println!(
                        "{:<18} {:<14} {:<10} {}",
                        text(&t["id"]),
                        text(&t["role"]),
                        state,
                        text(&t["label"])
                    );
                }
            });
        }
        TenantCommand::Revoke { name, id } => {
            c.send(
                c.http
                    .delete(c.url(&format!("/v1/tenants/{}/tokens/{}", enc(name), enc(id)))),
            )?;
            if args.output == Output::Table {
                println!("token {id} revoked");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
