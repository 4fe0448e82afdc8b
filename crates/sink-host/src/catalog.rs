//! The catalog of sink kinds this binary can make: built-in sinks and compiled-in native ones.

use std::collections::HashMap;
use std::sync::Arc;

use postern_sink_api::SinkFactory;

use crate::binding::SinkRef;

/// Sink factories by name, as `builtin:NAME` and `rust:NAME` bindings refer to them.
#[derive(Default, Clone)]
pub struct Catalog {
    builtin: HashMap<&'static str, Arc<dyn SinkFactory>>,
    rust: HashMap<&'static str, Arc<dyn SinkFactory>>,
    /// One factory per kind whose target varies by binding: `script`, `milter`, `http`.
    kinds: HashMap<&'static str, Arc<dyn SinkFactory>>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a built-in sink (`builtin:NAME`).
    pub fn add_builtin(&mut self, factory: Arc<dyn SinkFactory>) -> &mut Self {
        self.builtin.insert(factory.name(), factory);
        self
    }

    /// Adds a compiled-in native sink (`rust:NAME`).
    pub fn add_rust(&mut self, factory: Arc<dyn SinkFactory>) -> &mut Self {
        self.rust.insert(factory.name(), factory);
        self
    }

    /// Adds the factory of a whole kind of sink: `script`, `milter` or `http` (its
    /// [`SinkFactory::name`]). It makes each binding's sink from [`SinkSpec::target`].
    ///
    /// [`SinkSpec::target`]: postern_sink_api::SinkSpec::target
    pub fn add_kind(&mut self, factory: Arc<dyn SinkFactory>) -> &mut Self {
        self.kinds.insert(factory.name(), factory);
        self
    }

    /// The factory a binding's sink names.
    pub fn factory(&self, sink: &SinkRef) -> Result<Arc<dyn SinkFactory>, String> {
        let (map, name, kind) = match sink {
            SinkRef::Builtin(n) => (&self.builtin, n, "builtin"),
            SinkRef::Rust(n) => (&self.rust, n, "rust"),
            SinkRef::Script(_) | SinkRef::Milter(_) | SinkRef::Http(_) => {
                let kind = match sink {
                    SinkRef::Script(_) => "script",
                    SinkRef::Milter(_) => "milter",
                    _ => "http",
                };
                return self.kinds.get(kind).cloned().ok_or_else(|| {
                    format!("sink {sink}: this kind of sink is not available in this build yet")
                });
            }
        };
        map.get(name.as_str()).cloned().ok_or_else(|| {
            let mut known: Vec<_> = map.keys().map(|k| format!("{kind}:{k}")).collect();
            known.sort();
            format!("unknown sink {sink} (known: {})", known.join(", "))
        })
    }

    /// Every sink name, `kind:name`, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .builtin
            .keys()
            .map(|k| format!("builtin:{k}"))
            .chain(self.rust.keys().map(|k| format!("rust:{k}")))
            .collect();
        names.sort();
        names
    }
}
