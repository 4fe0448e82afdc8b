//! Alias expansion and sub-addressing for the default categorizer: a recipient of a local
//! domain becomes the addresses its aliases lead to, nested aliases followed to
//! `[categorizer] max_depth`, duplicates removed, loops detected.

use postern_config::{Config, LocalDomain};
use postern_mailmsg::envelope::split_address;

/// What one recipient expands to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// Final addresses, local or remote, in order, without duplicates (case-insensitive).
    pub(crate) targets: Vec<String>,
    /// Why part of the expansion failed: a loop or too deep a nesting (the chain of names).
    pub(crate) loops: Vec<String>,
    /// Addresses of a local domain that are neither users nor aliases.
    pub(crate) unknown: Vec<String>,
}

/// The 5.4.6 reply of a recipient whose expansion loops (RFC 3463: routing loop detected).
pub(crate) fn loop_reply(address: &str, chains: &[String]) -> String {
    format!(
        "554 5.4.6 <{address}>: routing loop detected in aliases ({})",
        chains.join("; ")
    )
}

/// The 5.1.1 reply of an unknown local user.
pub(crate) fn unknown_reply(address: &str) -> String {
    format!("550 5.1.1 <{address}>: user unknown")
}

/// Expands `address`; a non-local address, or a local user that is no alias, is its own
/// (single) target — a sub-addressed one (`bob+tag`) without its tag.
pub(crate) fn expand(config: &Config, address: &str) -> Expansion {
    let mut out = Expansion::default();
    let mut path = Vec::new();
    walk(config, address, &mut path, &mut out);
    out
}

fn walk(config: &Config, address: &str, path: &mut Vec<String>, out: &mut Expansion) {
    let (local, domain) = split_address(address);
    let Some(local_domain) = config.local_domain(domain) else {
        push(&mut out.targets, address.to_owned());
        return;
    };
    let table = local_domain.aliases.as_ref().map(|file| file.table());
    let lookup = |name: &str| {
        table
            .as_ref()
            .and_then(|t| t.get(name).map(<[String]>::to_vec))
    };
    // Postfix looks the whole local part up first, then the part before the delimiter.
    let (name, targets) = match lookup(local) {
        Some(targets) => (local, Some(targets)),
        None => match local_domain.base_of(local) {
            Some(base) => (base, lookup(base)),
            None => (local, None),
        },
    };
    let key = format!("{}@{}", name.to_ascii_lowercase(), local_domain.name);
    let Some(targets) = targets else {
        user(local_domain, local, address, out);
        return;
    };
    if path.contains(&key) || path.len() >= config.categorizer.max_depth {
        let mut chain = path.clone();
        chain.push(key);
        let why = if path.len() >= config.categorizer.max_depth {
            format!("deeper than {}", config.categorizer.max_depth)
        } else {
            String::new()
        };
        out.loops.push(format!("{}{why}", chain.join(" -> ")));
        return;
    }
    path.push(key.clone());
    for target in targets {
        let target = if target.contains('@') {
            target
        } else {
            format!("{target}@{}", local_domain.name)
        };
        // A name that lists itself is delivered to its own mailbox too (as in Postfix).
        if target.eq_ignore_ascii_case(&key) {
            user(local_domain, name, &target, out);
        } else {
            walk(config, &target, path, out);
        }
    }
    path.pop();
}

/// A name that is no alias: a user of the domain (without its sub-address) or unknown.
fn user(domain: &LocalDomain, local: &str, address: &str, out: &mut Expansion) {
    let mailbox = match domain.base_of(local) {
        Some(base) if !domain_has_user(domain, local) => base,
        _ => local,
    };
    if domain_has_user(domain, mailbox) {
        push(&mut out.targets, format!("{mailbox}@{}", domain.name));
    } else {
        push(&mut out.unknown, address.to_owned());
    }
}

fn domain_has_user(domain: &LocalDomain, local: &str) -> bool {
    let plain = LocalDomain {
        name: domain.name.clone(),
        users: domain.users.clone(),
        aliases: None,
        recipient_delimiter: String::new(),
    };
    plain.accepts(local)
}

fn push(list: &mut Vec<String>, address: String) {
    if !list.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
        list.push(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(aliases: &str, users: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("aliases"), aliases).expect("write");
        let text = format!(
            "data_dir = {:?}\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
             [[domain]]\nname = \"example.org\"\nusers = {users}\naliases = \"aliases\"\n\
             [categorizer]\nmax_depth = 3\n",
            dir.path().display().to_string()
        );
        let config = Config::parse(&text, postern_config::Source::Embedded).expect("config");
        (dir, config)
    }

    /// Name, address, wanted targets, how many loops, wanted unknown addresses.
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], usize, &'a [&'a str]);

    #[test]
    fn cases() {
        let aliases = "team: alice, bob, ops\nops: carol, alice@example.org, x@remote.test\n\
                       loop1: loop2\nloop2: alice, loop1\nself: self, bob\n\
                       d1: d2\nd2: d3\nd3: d4\nd4: alice\ntypo: nobody\n";
        let (_dir, config) = config(aliases, "[\"alice\", \"bob\", \"carol\", \"self\"]");
        let cases: &[Case<'_>] = &[
            (
                "plain user",
                "alice@example.org",
                &["alice@example.org"],
                0,
                &[],
            ),
            (
                "sub-address",
                "Bob+news@example.org",
                &["Bob@example.org"],
                0,
                &[],
            ),
            (
                "nested, deduplicated, remote",
                "team+x@example.org",
                &[
                    "alice@example.org",
                    "bob@example.org",
                    "carol@example.org",
                    "x@remote.test",
                ],
                0,
                &[],
            ),
            (
                "loop keeps the rest",
                "loop1@example.org",
                &["alice@example.org"],
                1,
                &[],
            ),
            (
                "self reference",
                "self@example.org",
                &["self@example.org", "bob@example.org"],
                0,
                &[],
            ),
            ("too deep", "d1@example.org", &[], 1, &[]),
            (
                "unknown target",
                "typo@example.org",
                &[],
                0,
                &["nobody@example.org"],
            ),
            ("remote", "x@else.test", &["x@else.test"], 0, &[]),
        ];
        for (name, address, targets, loops, unknown) in cases {
            let got = expand(&config, address);
            assert_eq!(got.targets, *targets, "{name}");
            assert_eq!(got.loops.len(), *loops, "{name}: {:?}", got.loops);
            assert_eq!(got.unknown, *unknown, "{name}");
        }
    }
}
