//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Postern: an extensible mail transfer agent.
#[derive(Debug, Parser)]
#[command(name = "postern", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server (on the embedded default configuration unless --config is given).
    Serve(ServeArgs),
    /// Validate a configuration file (or the embedded default) and the binding registry.
    CheckConfig(CheckArgs),
    /// Register and configure event bindings (like the original smtpreg tool).
    #[command(subcommand)]
    Binding(BindingCommand),
    /// Look after the queue: through the running server's admin API, or reading the spool in
    /// DATA/queue when no server runs (list, show, check).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The running server: version, uptime, listeners, connections, queue counts.
    Status(StatusArgs),
    /// The users who may authenticate (AUTH), in DATA/users.toml with argon2id hashes.
    #[command(subcommand)]
    User(UserCommand),
    /// Configuration files: `config default` prints the embedded default to start one from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with sinks without a server: `sink try` runs one once.
    #[command(subcommand)]
    Sink(SinkCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum SinkCommand {
    /// Run a sink once against a synthetic context and print its outcome as JSON.
    ///
    /// No server is needed. The sink is made as a binding with these properties would make it.
    /// Exit 0 when the sink ran (whatever it decided), 1 when it failed (error, panic, timeout),
    /// 2 for a usage error (bad event, unknown sink, bad property, unreadable --message).
    Try(Box<TryArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct TryArgs {
    /// The event (`inbound:MAIL`, `end-of-data`, `categorize`, …).
    #[arg(long)]
    pub(crate) event: String,
    /// The sink (`builtin:NAME`, `rust:NAME`, `script:PATH`, …).
    #[arg(long)]
    pub(crate) sink: String,
    /// A property of the sink, KEY=VALUE (repeatable).
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    pub(crate) props: Vec<String>,
    /// The envelope sender.
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) mail_from: Option<String>,
    /// An envelope recipient (repeatable); the first is the current one of per-recipient events.
    #[arg(long = "rcpt", value_name = "ADDRESS")]
    pub(crate) rcpts: Vec<String>,
    /// The message (headers and body) to give the sink.
    #[arg(long, value_name = "FILE")]
    pub(crate) message: Option<PathBuf>,
    /// The command line of an inbound event (default: made from the event and the envelope).
    #[arg(long, value_name = "LINE")]
    pub(crate) command: Option<String>,
    /// The client's EHLO name.
    #[arg(long, value_name = "NAME", default_value = "client.test")]
    pub(crate) helo: String,
    /// The client's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:40000")]
    pub(crate) remote: SocketAddr,
    /// How long the call may take (default 30s).
    #[arg(long)]
    pub(crate) timeout: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the embedded default configuration, a commented file to start your own from.
    Default,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user; the password is asked for on the terminal (twice, without echo).
    Add(UserPasswordArgs),
    /// Change a user's password.
    Passwd(UserPasswordArgs),
    /// Remove a user.
    Remove(UserArgs),
    /// The user names, one a line.
    List(UserListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct UserPasswordArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The user name (what the client sends in AUTH).
    pub(crate) name: String,
    /// Read the password from the first line of standard input instead of the terminal.
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UserArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The user name.
    pub(crate) name: String,
}

#[derive(Debug, Args)]
pub(crate) struct UserListArgs {
    #[command(flatten)]
    pub(crate) common: Common,
}

#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// Verify the spool and print what it finds.
    ///
    /// Every segment, the records in it, the live messages, and any damage: the segment, the
    /// octets and the queue ids lost. Changes nothing. Exit 0 when intact, 1 when damaged, 2 on
    /// bad usage or configuration, or when a running server holds the spool (stop it first).
    Check(QueueCheckArgs),
    /// The messages in the queue, oldest first (filters as in the admin API).
    List(QueueListArgs),
    /// One message in full: envelope, each recipient's status, headers, history.
    Show(QueueShowArgs),
    /// Deliver now (a deferred message before its time).
    Retry(QueueActArgs),
    /// Keep messages in the queue untouched until released.
    Hold(QueueActArgs),
    /// Deliver held messages.
    Release(QueueActArgs),
    /// Drop messages silently: no delivery, no DSN.
    Delete(QueueActArgs),
    /// Give up on messages now: a failure DSN to each sender.
    Bounce(QueueActArgs),
}

/// The filters of `postern queue`, as the admin API's query parameters.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct QueueFilterArgs {
    /// queued, deferred or held.
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// The sender contains this text.
    #[arg(long)]
    pub(crate) sender: Option<String>,
    /// A recipient contains this text.
    #[arg(long)]
    pub(crate) recipient: Option<String>,
    /// A recipient is in this domain.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Arrived at least this long ago (e.g. 30m, 2h, 3days).
    #[arg(long, value_name = "DURATION")]
    pub(crate) older_than: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct QueueListArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    #[command(flatten)]
    pub(crate) filter: QueueFilterArgs,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QueueShowArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The queue id.
    pub(crate) id: String,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QueueActArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Queue ids; or select the messages with the filters, or --all.
    pub(crate) ids: Vec<String>,
    #[command(flatten)]
    pub(crate) filter: QueueFilterArgs,
    /// Every message in the queue.
    #[arg(long)]
    pub(crate) all: bool,
    /// Do not ask for confirmation before acting on messages chosen by filters or --all.
    #[arg(long)]
    pub(crate) yes: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QueueCheckArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BindingCommand {
    /// Register a binding; prints its id.
    Add(Box<AddArgs>),
    /// The bindings in the order they run, per event.
    List(ListArgs),
    /// One binding in full.
    Show(ShowArgs),
    /// Unregister a binding.
    Remove(TargetArgs),
    /// Let a binding fire again.
    Enable(TargetArgs),
    /// Keep a binding registered but stop it firing.
    Disable(TargetArgs),
    /// Set a property of a binding's sink.
    SetProp(SetPropArgs),
    /// Remove a property of a binding's sink.
    DelProp(DelPropArgs),
    /// The event names a binding can use, with the original names they also accept.
    Events,
    /// The built-in sinks, one a line, with the properties each takes.
    Sinks,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The event (`inbound:MAIL`, `end-of-data`, `categorize`, … or an original name).
    #[arg(long)]
    pub(crate) event: String,
    /// The sink (`builtin:NAME`, `rust:NAME`, …).
    #[arg(long)]
    pub(crate) sink: String,
    /// A unique display name (default: made from the sink and the id).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// 0 (first) … 32767 (last), or highest, high, medium, low, lowest.
    #[arg(long, default_value = "low")]
    pub(crate) priority: String,
    /// When the sink fires, e.g. `MAIL FROM=*@example.com;!REMOTE=10.0.0.0/8`.
    #[arg(long, default_value = "")]
    pub(crate) rule: String,
    /// A property of the sink, KEY=VALUE (repeatable).
    #[arg(long = "prop", value_name = "KEY=VALUE")]
    pub(crate) props: Vec<String>,
    /// Register it disabled.
    #[arg(long)]
    pub(crate) disabled: bool,
    /// Run it in shadow mode: logged and counted, never applied.
    #[arg(long)]
    pub(crate) shadow: bool,
    /// Make a fresh sink instance for every event instead of one cached instance.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// How long one call may take (e.g. 500ms, 5s).
    #[arg(long)]
    pub(crate) timeout: Option<String>,
    /// What a failure, panic or timeout does: tempfail, continue, reject.
    #[arg(long)]
    pub(crate) on_error: Option<String>,
    /// Stop firing after this many seconds from now.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) expires_in: Option<u64>,
    /// Stop firing after this many firings.
    #[arg(long)]
    pub(crate) max_firings: Option<u64>,
    /// At most N calls of the sink in flight; a call beyond them waits up to the timeout, then
    /// on_error applies.
    #[arg(long, value_name = "N")]
    pub(crate) max_concurrency: Option<u32>,
    /// Circuit breaker: after FAILURES failures (errors, panics, timeouts) within SECONDS, skip
    /// the sink with its on_error for SECONDS, then call it again.
    #[arg(long, value_name = "FAILURES/SECONDS")]
    pub(crate) breaker: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Only this event.
    #[arg(long)]
    pub(crate) event: Option<String>,
    /// Include the default sinks (and every event, bound or not).
    #[arg(long)]
    pub(crate) all: bool,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The binding's id or name.
    pub(crate) binding: String,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The binding's id or name.
    pub(crate) binding: String,
    /// JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SetPropArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The binding's id or name.
    pub(crate) binding: String,
    /// KEY=VALUE.
    pub(crate) property: String,
}

#[derive(Debug, Args)]
pub(crate) struct DelPropArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The binding's id or name.
    pub(crate) binding: String,
    /// The property's key.
    pub(crate) key: String,
}

/// Where the configuration and data are; every command takes these.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct Common {
    /// The configuration file (TOML). Without it the embedded default is used.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The data folder (queue, mailboxes, bindings), instead of the configured one.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Logging goes to standard error. Its level is, from the first that is set: \
--log-level, the RUST_LOG environment variable, `[log] level` of the configuration (default \
\"info\"). Each is a tracing filter directive: a level (error, warn, info, debug, trace) or \
TARGET=LEVEL pairs joined by commas, such as \"postern_smtp_in=debug,info\"."
)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// The log level or filter directive, instead of RUST_LOG and `[log] level`.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,
    /// An address to listen on, instead of the configured listeners (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<SocketAddr>,
    /// The server's name in the greeting, EHLO and trace fields.
    #[arg(long, value_name = "NAME")]
    pub(crate) hostname: Option<String>,
    /// The admin API's address (IP:PORT, port 0 for a free one), instead of `[admin] address`;
    /// "" turns the admin API off.
    #[arg(long, value_name = "ADDR", value_parser = admin_listen)]
    pub(crate) admin_listen: Option<AdminListen>,
}

/// `--admin-listen`: an address, or `None` for "" (off).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdminListen(pub(crate) Option<SocketAddr>);

fn admin_listen(text: &str) -> Result<AdminListen, String> {
    postern_config::admin_address(text).map(AdminListen)
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The configuration file (or give it with --config, not both); without it the embedded
    /// default is checked.
    #[arg(value_name = "FILE", conflicts_with = "config")]
    pub(crate) file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) common: Common,
}
