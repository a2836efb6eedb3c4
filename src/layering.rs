//! The layering rules, checked by reading the sources: dependencies point inward
//! (`domain` ← `app` ← `http`/`workers`/`live` ← `roles`), the domain does no I/O, and
//! handlers reach stores only through use cases.

use std::path::{Path, PathBuf};

/// Crates that do I/O (or drive it): none of them belongs in the domain.
const IO_CRATES: &[&str] = &[
    "actix_files",
    "actix_multipart",
    "actix_rt",
    "actix_web",
    "actix_ws",
    "aws_lc_rs",
    "aws_sdk_s3",
    "deadpool",
    "deadpool_redis",
    "diesel",
    "diesel_async",
    "diesel_migrations",
    "jsonwebtoken",
    "openidconnect",
    "rdkafka",
    "redis",
    "reqwest",
    "rskafka",
    "tokio",
    "tokio_util",
];

/// For each layer (a directory under `src/`), the layers it must not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "adapters", "app", "error", "http", "live", "roles", "workers",
        ],
    ),
    ("app", &["http", "live", "roles", "workers"]),
    ("adapters", &["app", "http", "live", "roles", "workers"]),
    ("http", &["adapters", "roles", "workers"]),
    ("live", &["http", "roles", "workers"]),
    ("workers", &["http", "roles"]),
];

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The file's code without comment lines (docs may name any module).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable source file")
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `code` names the path root `root` (as `root::`, not as part of a longer name).
fn names(code: &str, root: &str) -> bool {
    let needle = format!("{root}::");
    code.match_indices(&needle).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

fn layer_files(layer: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src")
            .join(layer),
        &mut files,
    );
    assert!(!files.is_empty(), "no sources under src/{layer}");
    files.into_iter().map(|f| (f.clone(), code(&f))).collect()
}

#[test]
fn the_domain_does_no_io() {
    let mut offences = Vec::new();
    for (file, code) in layer_files("domain") {
        for krate in IO_CRATES {
            if names(&code, krate) {
                offences.push(format!("{} uses {krate}", file.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn dependencies_point_inward() {
    let mut offences = Vec::new();
    for (layer, forbidden) in FORBIDDEN {
        for (file, code) in layer_files(layer) {
            for other in *forbidden {
                if names(&code, &format!("crate::{other}")) {
                    offences.push(format!("{} names crate::{other}", file.display()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn the_check_sees_what_it_looks_for() {
    assert!(names("use crate::adapters::redis;", "crate::adapters"));
    assert!(names("let x = tokio::spawn(f);", "tokio"));
    assert!(!names("use my_tokio::x;", "tokio"));
    assert!(!names("use std::tokio_like::x;", "tokio"));
}
