//! The Prometheus text format (version 0.0.4) for scrapers and tools that do not read
//! OpenMetrics — `promtool check metrics` among them, and `curl` by a person.
//!
//! The two formats differ, for what Postern exposes, only in the metadata lines: OpenMetrics
//! names a counter family without its `_total` suffix and ends with `# EOF`; the older format
//! wants the sample's name in `# HELP` and `# TYPE`, and no `# EOF` or `# UNIT`.

use std::collections::HashSet;

/// The content type of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites an OpenMetrics exposition into the Prometheus text format.
pub(crate) fn from_openmetrics(open: &str) -> String {
    let counters: HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + counters.len() * 16);
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match meta {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_metadata_takes_the_sample_name_and_eof_goes() {
        let open = "# HELP a_x Things.\n# TYPE a_x counter\na_x_total 3\n\
                    # HELP g Level.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            super::from_openmetrics(open),
            "# HELP a_x_total Things.\n# TYPE a_x_total counter\na_x_total 3\n\
             # HELP g Level.\n# TYPE g gauge\ng 1\n"
        );
    }
}
