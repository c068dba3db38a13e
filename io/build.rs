//! Records the git commit the binaries are built from (`pgfleet_build_info{revision}`), or
//! "unknown" when there is no git checkout (a source tarball) or no git.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    // An explicit PGFLEET_GIT_REVISION wins: a container build from a tree without .git.
    let revision = std::env::var("PGFLEET_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PGFLEET_GIT_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=PGFLEET_GIT_REVISION");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the branch it points to.
    // Only files that exist: a missing one would make cargo rerun this on every build.
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &branch]));
        watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    }
    for path in watch.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
