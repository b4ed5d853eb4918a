//! The storage engines compiled into this binary (one cargo feature each) and running a
//! node on the one chosen by `--engine`.

/// The engines compiled in, in order of preference for the default.
pub fn compiled() -> Vec<&'static str> {
    let mut engines = Vec::new();
    if cfg!(feature = "engine-redb") {
        engines.push("redb");
    }
    if cfg!(feature = "engine-lmdb") {
        engines.push("lmdb");
    }
    if cfg!(feature = "engine-rocks") {
        engines.push("rocks");
    }
    if cfg!(feature = "engine-mem") {
        engines.push("mem");
    }
    engines
}

/// The default engine: redb when compiled in, else the first one.
pub fn default_engine() -> &'static str {
    compiled().first().copied().unwrap_or("none")
}

/// Checks an engine name against the compiled-in engines.
pub fn check(name: &str) -> Result<(), String> {
    if compiled().contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "unknown or not compiled-in engine {name:?}; this binary has: {} (others need a rebuild with the cargo feature engine-<name>)",
            compiled().join(", ")
        ))
    }
}

/// Runs `$body` with `$open` bound to the opener of engine `$name` (an expression
/// evaluating to a `&str`) and `$E` to its type; evaluates to `Err(String)` for an
/// engine that is not compiled in.
#[macro_export]
macro_rules! with_engine {
    ($name:expr, |$open:ident| $body:expr) => {{
        match $name {
            #[cfg(feature = "engine-mem")]
            "mem" => {
                let $open = |_: &std::path::Path| {
                    Ok::<_, elastickv_engine_api::EngineError>(
                        elastickv_engine_mem::MemEngine::new(),
                    )
                };
                Ok($body)
            }
            #[cfg(feature = "engine-redb")]
            "redb" => {
                let $open = |dir: &std::path::Path| {
                    elastickv_engine_redb::open_redb(
                        dir,
                        elastickv_engine_redb::RedbOptions::default(),
                    )
                };
                Ok($body)
            }
            #[cfg(feature = "engine-lmdb")]
            "lmdb" => {
                let $open = |dir: &std::path::Path| {
                    elastickv_engine_lmdb::open_lmdb(
                        dir,
                        elastickv_engine_lmdb::LmdbOptions::default(),
                    )
                };
                Ok($body)
            }
            #[cfg(feature = "engine-rocks")]
            "rocks" => {
                let $open = |dir: &std::path::Path| {
                    elastickv_engine_rocks::open_rocks(
                        dir,
                        elastickv_engine_rocks::RocksOptions::default(),
                    )
                };
                Ok($body)
            }
            other => Err($crate::engines::check(other).unwrap_err()),
        }
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_wrong_engine_lists_the_compiled_ones() {
        let e = super::check("nosuch").unwrap_err();
        for name in super::compiled() {
            assert!(e.contains(name), "{e}");
        }
        assert!(super::check(super::default_engine()).is_ok());
    }
}
