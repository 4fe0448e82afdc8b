//! The "Aliases and sub-addressing" recipe of docs/cookbook.md, run as written: the test reads
//! the recipe's fenced blocks (the configuration, the aliases file, the `postern` commands), sets
//! them up, and checks what the recipe says to expect.

mod common;

use common::Postern;
use common::cookbook::{self, block, recipe};
use common::peers::Mx;

const HEADING: &str = "Aliases and sub-addressing";

#[test]
fn cookbook_aliases_and_sub_addressing() {
    let blocks = recipe(HEADING);
    let mx = Mx::start("127.0.0.2", "{}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("aliases"), block(&blocks, "aliases")).unwrap();
    // The recipe's configuration, plus what the harness needs: a listener, and a route that
    // takes example.net to the test's MX instead of the Internet.
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\ndomain = \"example.net\"\n\
         smarthost = \"[127.0.0.2]:{}\"\n\n{}",
        mx.port,
        block(&blocks, "toml")
    );
    let file = dir.path().join("postern.toml");
    std::fs::write(&file, &config).unwrap();
    cookbook::run(dir.path(), &cookbook::commands(HEADING));
    let server = Postern::start_in(dir.path(), Some(&config));
    let mut c = server.client();
    let reply = c.send_message(
        "carol@example.org",
        &["support@example.org", "bob+invoices@example.org"],
        "Subject: recipe\r\n\r\nbody\r\n",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    // bob is on `sales` and a recipient himself: one copy.
    for user in ["alice", "bob", "carol"] {
        server.wait_for_mail("example.org", user, 1);
    }
    let got = mx.wait_for(1);
    assert_eq!(got[0].0["to"], serde_json::json!(["partner@example.net"]));
}
