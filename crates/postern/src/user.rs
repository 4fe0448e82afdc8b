//! `postern user …`: the users who may authenticate (AUTH), in `DATA/users.toml` with argon2id
//! hashes. No server needed: a running one reads the file at every AUTH.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use postern_config::Overrides;
use postern_smtp_in::users::Users;

use crate::cli::{Common, UserCommand, UserPasswordArgs};
use crate::setup;

pub(crate) fn run(command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add(args) => set(args, true),
        UserCommand::Passwd(args) => set(args, false),
        UserCommand::Remove(args) => {
            let Some((path, mut users)) = open(&args.common)? else {
                return Ok(ExitCode::from(2));
            };
            if !users.remove(&args.name) {
                eprintln!("postern: no user {:?} in {}", args.name, path.display());
                return Ok(ExitCode::from(1));
            }
            users.save(&path)?;
            eprintln!("postern: removed {}", args.name);
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::List(args) => {
            let Some((_, users)) = open(&args.common)? else {
                return Ok(ExitCode::from(2));
            };
            for name in users.names() {
                println!("{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store's path and contents; `None` (after saying why) when the configuration is bad.
fn open(common: &Common) -> Result<Option<(std::path::PathBuf, Users)>> {
    let config = match setup::config(None, common, Overrides::default()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(None);
        }
    };
    let path = Users::path(&config.data_dir);
    let users = Users::load(&path)?;
    Ok(Some((path, users)))
}

/// `add` (a new user) or `passwd` (an existing one).
fn set(args: UserPasswordArgs, new: bool) -> Result<ExitCode> {
    let Some((path, mut users)) = open(&args.common)? else {
        return Ok(ExitCode::from(2));
    };
    match (new, users.contains(&args.name)) {
        (true, true) => {
            eprintln!(
                "postern: user {:?} exists: change the password with `postern user passwd`",
                args.name
            );
            return Ok(ExitCode::from(1));
        }
        (false, false) => {
            eprintln!("postern: no user {:?} in {}", args.name, path.display());
            return Ok(ExitCode::from(1));
        }
        _ => {}
    }
    let password = if args.password_stdin {
        from_stdin()?
    } else {
        from_terminal()?
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    users.set_password(&args.name, &password)?;
    users.save(&path)?;
    let done = if new {
        "added"
    } else {
        "changed the password of"
    };
    eprintln!("postern: {done} {} in {}", args.name, path.display());
    Ok(ExitCode::SUCCESS)
}

/// The first line of standard input, without its line end.
fn from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asked twice on the terminal, without echo.
fn from_terminal() -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask the password on: give it with --password-stdin");
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        bail!("the passwords differ");
    }
    Ok(first)
}
