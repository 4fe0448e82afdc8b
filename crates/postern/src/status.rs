//! `postern status`: what the running server says about itself.

use std::process::ExitCode;

use anyhow::Result;
use postern_config::Overrides;
use serde_json::Value;

use crate::admin_client::{Api, Reach};
use crate::cli::StatusArgs;
use crate::setup;

pub(crate) fn run(args: StatusArgs) -> Result<ExitCode> {
    let config = match setup::config(None, &args.common, Overrides::default()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    let api = match Api::reach(&config)? {
        Reach::Running(api) => api,
        Reach::NotRunning(why) => {
            eprintln!("postern: {why}");
            return Ok(ExitCode::from(1));
        }
    };
    let status = api.get("/v1/status", &[])?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", human(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn human(status: &Value) -> String {
    let mut out = format!(
        "postern {} on {}, up {}s\n",
        status["version"].as_str().unwrap_or("?"),
        status["hostname"].as_str().unwrap_or("?"),
        status["uptime_seconds"]
    );
    for l in status["listeners"].as_array().into_iter().flatten() {
        let protocol = l["protocol"].as_str().unwrap_or("?");
        let mode = l["mode"]
            .as_str()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let address = l["address"].as_str().unwrap_or("?");
        out.push_str(&format!("listening {protocol}{mode} {address}\n"));
    }
    out.push_str(&format!(
        "connections open: {}\n",
        status["connections"]["open"]
    ));
    let q = &status["queue"];
    out.push_str(&format!(
        "queue: {} queued, {} deferred, {} held, {} in all\n",
        q["queued"], q["deferred"], q["held"], q["total"]
    ));
    out
}
