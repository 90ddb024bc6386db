//! `wasmscale check`: load a policy, print what it is, and evaluate it once on
//! the smoke snapshot.

use super::load_params;
use crate::host::{Host, PolicyError, PolicySource};
use anyhow::{Result, bail};

pub fn check(host: &Host, policy: &str, params: Option<&str>) -> Result<std::process::ExitCode> {
    let source = PolicySource::parse(policy);
    let params = load_params(&source, params)?;
    let compiled = host.load(&source)?;
    println!("policy:        {}", compiled.name());
    println!("digest:        sha256:{}", compiled.digest());
    println!("size:          {} bytes", compiled.size());
    println!(
        "contract:      {} (imports and exports ok)",
        compiled.contract().as_str()
    );
    println!(
        "compile time:  {:.1} ms{}",
        compiled.compile_time().as_secs_f64() * 1e3,
        if compiled.from_cache() {
            " (loaded from cache)"
        } else {
            ""
        }
    );
    let mut instance = compiled.instantiate(&params)?;
    let (_, signals) = instance.contract();
    if compiled.contract() == crate::host::Contract::V2 {
        println!("signals:       {}", signals.join(", "));
        match instance.replica_signals() {
            None => println!("replicas:      not read"),
            Some(per) if per.is_empty() => {
                println!("replicas:      ids, pools, states and ages (no per-replica signals)");
            }
            Some(per) => println!("replicas:      per-replica signals {}", per.join(", ")),
        }
    } else {
        println!("signals:       the whole 0.1 snapshot (0.1 policies declare none)");
    }
    let smoke = crate::snapshot::smoke().map_err(|e| anyhow::anyhow!("smoke snapshot: {e}"))?;
    match instance.evaluate(&smoke) {
        Ok(eval) => {
            println!(
                "smoke eval:    desired {} ({}), {} fuel, {:.1} µs",
                eval.decision.desired,
                eval.decision.reason,
                eval.cost.fuel,
                eval.cost.elapsed.as_secs_f64() * 1e6
            );
            println!("ok");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(PolicyError::Rejected(msg)) => {
            println!("smoke eval:    the policy declined the smoke snapshot: {msg}");
            println!("ok (the host would hold the current count on such a tick)");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => bail!(
            "smoke evaluation failed [{}]: {e}; {}",
            e.kind(),
            e.outcome()
        ),
    }
}
