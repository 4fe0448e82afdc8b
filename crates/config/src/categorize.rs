//! `[categorizer]` and each domain's `aliases`: the settings of the default categorizer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use crate::error::Problems;
use crate::model::{Categorizer, LocalDomain};
use crate::raw::RawCategorizer;

pub(crate) fn categorizer(raw: RawCategorizer, problems: &mut Problems<'_>) -> Categorizer {
    let mut categorizer = Categorizer::default();
    if let Some(depth) = raw.max_depth {
        match usize::try_from(*depth.get_ref()) {
            Ok(n) if (1..=1000).contains(&n) => categorizer.max_depth = n,
            _ => problems.at(
                depth.span(),
                "categorizer.max_depth",
                format!("must be from 1 to 1000, not {}", depth.get_ref()),
            ),
        }
    }
    if let Some(delimiter) = raw.recipient_delimiter {
        let text = delimiter.get_ref();
        if text.chars().count() > 1 || text.contains(['@', '"', ' ', '\\']) {
            problems.at(
                delimiter.span(),
                "categorizer.recipient_delimiter",
                format!(
                    "must be one character other than @, \", space or \\ (or empty), not {text:?}"
                ),
            );
        } else {
            categorizer.recipient_delimiter = text.clone();
        }
    }
    categorizer
}

pub(crate) fn aliases_path(
    raw: Option<Spanned<String>>,
    domain: usize,
    problems: &mut Problems<'_>,
) -> Option<Arc<crate::AliasFile>> {
    let raw = raw?;
    if raw.get_ref().is_empty() {
        problems.at(
            raw.span(),
            format!("domain[{domain}].aliases"),
            "must not be empty",
        );
        return None;
    }
    // Resolved against the data folder once it is known (`attach`).
    Some(Arc::new(crate::AliasFile::new(
        Path::new(""),
        PathBuf::from(raw.into_inner()),
    )))
}

/// Resolves the aliases files against the data folder and copies the delimiter into each
/// domain (so that `LocalDomain::accepts` knows sub-addresses).
pub(crate) fn attach(domains: &mut [LocalDomain], data_dir: &Path, categorizer: &Categorizer) {
    for domain in domains {
        domain.recipient_delimiter = categorizer.recipient_delimiter.clone();
        if let Some(file) = &domain.aliases {
            domain.aliases = Some(Arc::new(crate::AliasFile::new(
                data_dir,
                file.configured.clone(),
            )));
        }
    }
}
